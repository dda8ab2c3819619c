"""The test suite (pytest), run with `make test`."""
