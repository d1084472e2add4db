"""The case in its domain forms: pydantic facts and named-tuple records, code lists, field types, accepted dates."""
