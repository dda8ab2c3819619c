"""Data sets: schema, label rules, the highway-env simulator source and importers."""
