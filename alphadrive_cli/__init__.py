"""alphadrive: train driving VLMs to plan with reasoning and RL (AlphaDrive, arXiv 2503.07608)."""

__version__ = "0.1.0"
