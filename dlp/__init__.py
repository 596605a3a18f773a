"""dlp: data-loss-prevention for the outbound email and web traffic of outsourced call centers."""

import os

# numpy (offset maps, the EDM index) only does element-wise work here; OpenBLAS's thread pool would
# just compete with the inspection workers for the cores. Must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
