"""Run shard functions with bounded concurrency and a progress bar.

The library's stage functions take an ``executor`` argument (Lhotse style): the default
is a bounded thread pool; Prefect flows and Dask clusters bring their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from typing import TypeVar

from ser_pipeline.progress import progress_bar

T = TypeVar("T")
R = TypeVar("R")


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Split ``items`` into consecutive shards of at most ``size``."""
    if size < 1:
        raise ValueError(f"shard size must be >= 1, got {size}")
    return [list(items[start:start + size]) for start in range(0, len(items), size)]


def map_shards(
    fn: Callable[[T], R],
    shards: Sequence[T],
    *,
    executor: Executor | None = None,
    max_workers: int = 2,
    description: str = "shards",
) -> list[R]:
    """Apply ``fn`` to every shard, at most ``max_workers`` at a time, in input order."""
    results: list[R | None] = [None] * len(shards)
    if not shards:
        return []
    owned = executor is None
    executor = executor or ThreadPoolExecutor(max_workers=max_workers)
    try:
        with progress_bar(description, total=len(shards)) as advance:
            futures = {executor.submit(fn, shard): index for index, shard in enumerate(shards)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                advance(1)
    finally:
        if owned:
            executor.shutdown(wait=True, cancel_futures=True)
    return results  # type: ignore[return-value]
