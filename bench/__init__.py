"""Benchmarks and the ablation, each run from the repository root as ``python -m bench.<name>`` (docs/benchmarks.md)."""
