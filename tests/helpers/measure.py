"""Peak traced memory and elapsed time of one call, for the tests that bound what hostile input costs."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any


def peak_memory(fn: Callable[[], Any]) -> tuple[Any, int, float]:
    """fn()'s result, the peak of memory traced while it ran (bytes), and the seconds it took."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak, time.monotonic() - started
