"""Model and processor loading (hub id, local directory, model artifact) and the tiny offline builder."""
