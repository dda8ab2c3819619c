"""The pipeline stages: each a function from a validated config (and input artifacts) to an artifact."""
