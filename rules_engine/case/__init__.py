"""The case in its domain forms: pydantic facts, code lists, the fast path's records."""
