"""Policy tooling: rule tests, diff, docs, schemas, synthetic cases, replay, catalogue evaluation."""
