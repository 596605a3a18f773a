"""dlp: data-loss-prevention for the outbound email and web traffic of outsourced call centers."""

__version__ = "0.1.0"
