"""A Bloom filter of an index's identifying keys: most messages carry no customer value, and each of
their candidates is rejected with two bit probes in Python instead of a binary search of the memory-mapped
arrays. Built from the keyed hashes (so it holds no clear value either) and stored in the index file."""

from __future__ import annotations

import numpy as np

BITS_PER_KEY = 16  # with two probes: about 1.5% false positives, which only cost the exact check
_MASK32 = 0xFFFFFFFF


def build_filter(keys: np.ndarray) -> np.ndarray:
    """The filter's bits (u8, a power of two bytes long) for 64-bit keyed hashes, which are uniformly
    distributed (truncated HMACs), so their halves serve as the two probe hashes."""
    size = 1 << max(13, (max(1, len(keys)) * BITS_PER_KEY - 1).bit_length())
    slots = np.zeros(size, dtype=bool)
    keys = np.asarray(keys, dtype=np.uint64)
    mask = np.uint64(size - 1)
    slots[(keys & mask).astype(np.intp)] = True
    slots[((keys >> np.uint64(32)) & mask).astype(np.intp)] = True
    return np.packbits(slots, bitorder="little")


class SeedFilter:
    """Answers "may this key be an identifying value of the index?": never no for one that is."""

    __slots__ = ("_bits", "_mask")

    def __init__(self, bits: np.ndarray) -> None:
        if len(bits) < 1024 or len(bits) & (len(bits) - 1):
            raise ValueError("a seed filter is a power of two bytes long, at least 1 KiB")
        self._bits = memoryview(np.ascontiguousarray(bits, dtype=np.uint8)).cast("B")
        self._mask = len(bits) * 8 - 1

    def __contains__(self, key: int) -> bool:
        bits, mask = self._bits, self._mask
        slot = key & mask
        if not bits[slot >> 3] >> (slot & 7) & 1:
            return False
        slot = (key >> 32) & mask
        return bool(bits[slot >> 3] >> (slot & 7) & 1)
