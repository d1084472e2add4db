"""Rule files to a compiled ruleset: source, loading, schema, validation, compilation."""
