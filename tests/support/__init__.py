"""Helpers the tests (and bench/distill_client.py) share: labelled data sets, a fault-injecting OpenAI-compatible
server, interrupting callbacks and a rank probe for launched runs."""
