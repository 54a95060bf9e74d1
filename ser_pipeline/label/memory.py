"""Hand freed heap pages back to the OS between shards (glibc only).

Why: each shard's batches (decoded clips, padded inputs, activations of shapes that change
from batch to batch) leave freed memory in glibc's arenas that later shards did not reuse,
so RSS climbed with the number of clips: label peak 1.35 GB at 200 clips, 3.4 GB at 2,000
(bench/memory.py). Trimming keeps it flat (~1 GB) for a few percent of CPU (the next shard
faults its pages back in).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: Trim the C heap after a shard when glibc holds more free bytes than this.
TRIM_FREE_BYTES = 64 * 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallinfo2.restype = _MallInfo2
        return libc
    except (OSError, AttributeError):  # not glibc (macOS, musl) or glibc < 2.33
        return None


def release_free_memory(*, min_free: int = TRIM_FREE_BYTES) -> bool:
    """Hand free heap pages back to the OS once glibc holds over ``min_free`` bytes of them.

    Returns whether it trimmed; a no-op (``False``) where glibc is absent.

    Examples:
        >>> release_free_memory(min_free=2**62)  # never that much free: nothing to do
        False
    """
    libc = _glibc()
    if libc is None or libc.mallinfo2().fordblks <= min_free:
        return False
    libc.malloc_trim(0)
    return True
