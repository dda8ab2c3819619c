"""Closed-loop evaluation: a model (or the expert) drives highway-env episodes."""
