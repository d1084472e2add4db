"""Evaluation: calendar, measures, matching, explanations, the registry and the Engine."""
