"""The `rules-engine` commands."""
