"""Keep a label worker's memory flat however many clips it labels (glibc only).

Why: each batch (decoded clips, padded inputs, activations of shapes that change from
batch to batch) leaves freed memory in glibc's arenas that later batches do not fit into,
so RSS climbed with the number of clips (bench/memory.py, tiny teacher: peak 1,350 MiB at
200 clips, 3,439 MiB at 2,000 with no remedy; ~1,950 MiB with a trim after each shard). Two
remedies, measured there (docs/stages/performance.md, section 2): blocks of 4 MiB or more
get their own mapping (:func:`large_blocks_mapped`), and free pages are handed back between
teacher calls (:func:`release_free_memory`). Together: ~1,160 MiB at 200 clips, ~1,310 MiB
at 2,000. The cost is page faults: ~30 % more wall for the tiny teacher, 5 % for the large.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Iterator

#: Trim the C heap between teacher calls when glibc holds more free bytes than this.
TRIM_FREE_BYTES = 64 * 2**20
#: Blocks at least this large get a mapping of their own, handed back to the OS on free.
MMAP_THRESHOLD_BYTES = 4 * 2**20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
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


#: glibc's own ceiling for its moving threshold (64-bit): where the threshold of a
#: process that freed large blocks ends up anyway, restored once no labeling runs.
DYNAMIC_THRESHOLD_CEILING = 32 * 2**20
_mapped_lock = threading.Lock()
_mapped_users = 0


@contextlib.contextmanager
def large_blocks_mapped(threshold: int = MMAP_THRESHOLD_BYTES) -> Iterator[bool]:
    """Inside, heap blocks of ``threshold`` bytes or more get mappings of their own.

    glibc raises its mmap threshold each time a mapped block is freed (up to 32 MiB), after
    which batch-sized tensors come from the shared heap and leave holes that later shapes
    do not fit. A fixed threshold hands them back to the OS on free. Nested and concurrent
    uses (shards on a thread pool) share one setting; the last to leave sets
    :data:`DYNAMIC_THRESHOLD_CEILING`, so the rest of the process (training after labeling)
    is not charged the page faults. Yields whether the setting took (False without glibc).

    Examples:
        >>> import sys
        >>> with large_blocks_mapped() as mapped:
        ...     mapped == sys.platform.startswith("linux")  # glibc on Linux here
        True
    """
    global _mapped_users
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _mapped_lock:
        _mapped_users += 1
        if _mapped_users == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, threshold)
    try:
        yield True
    finally:
        with _mapped_lock:
            _mapped_users -= 1
            if _mapped_users == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, DYNAMIC_THRESHOLD_CEILING)
