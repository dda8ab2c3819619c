"""Model and processor loading (hub id, local directory, model artifact) and the tiny offline builder."""

import logging

# bitsandbytes warns on import on CPUs with AVX512-BF16 that it could not fetch an optional kernel from
# a hub; alphadrive never runs 4-bit on the CPU (it falls back to plain LoRA), so the line is only noise
# that would break the one-line error contract on stderr.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
