"""Committing labels: one part file per shard, never a duplicate row.

Commits are atomic part files with deterministic keys ``content_key(teacher_id, sorted
ids)``: a crash loses at most the shards in flight, and a re-run finishes the rest.
Concurrent labelers on the same lake and teacher never write duplicate rows: each commit
holds a per-teacher :class:`~ser_pipeline.storage.LeaseLock`, re-reads the ids labeled so
far (only part files it has not seen) and drops those before writing. Two labelers may
compute the same clip twice; only one row lands. A lock left by a dead process is broken
after ``LOCK_STALE_S`` (at once when its owner was a process on this host).
"""

from __future__ import annotations

import functools
import threading

import pyarrow.compute as pc

from ser_pipeline.lake import Lake, content_key
from ser_pipeline.storage import LeaseLock

LOCK_STALE_S = 60.0
LOCK_WAIT_S = 300.0
#: Labeled-id indexes kept per process, one per (lake, teacher); the least recently used
#: goes first (a new one re-reads the label parts, so eviction costs time, never rows).
INDEX_CACHE_SIZE = 8


class LabeledIndex:
    """Ids labeled by a teacher, refreshed incrementally (part files are immutable)."""

    def __init__(self) -> None:
        self.parts: set[str] = set()
        self.ids: set[str] = set()
        self._lock = threading.Lock()

    def refresh(self, lake: Lake, teacher_id: str) -> set[str]:
        """Read the label parts not seen yet; returns the ids labeled so far."""
        with self._lock:
            for part in lake.parts("teacher_labels"):
                if part in self.parts:
                    continue
                table = lake.storage.read_parquet(part, columns=["audio_id", "teacher_id"])
                mask = pc.equal(table.column("teacher_id"), teacher_id)
                self.ids.update(table.filter(mask).column("audio_id").to_pylist())
                self.parts.add(part)
            return self.ids

    def add(self, ids: list[str]) -> None:
        with self._lock:
            self.ids.update(ids)


@functools.lru_cache(maxsize=INDEX_CACHE_SIZE)
def labeled_index(lake_url: str, teacher_id: str) -> LabeledIndex:
    """The process's index for one lake and teacher (shared by its shards).

    Examples:
        >>> labeled_index("/lake", "t") is labeled_index("/lake", "t")
        True
        >>> labeled_index.cache_info().maxsize
        8
    """
    return LabeledIndex()


def commit_lock_path(teacher_id: str) -> str:
    """The lock object that serialises one teacher's commits in a lake."""
    return f"teacher_labels/_locks/{content_key('label-commit', teacher_id)}.lock"


def commit_lock(lake: Lake, teacher_id: str) -> LeaseLock:
    """The per-teacher commit lock (use it as a context manager)."""
    return LeaseLock(lake.storage, commit_lock_path(teacher_id), lease_s=LOCK_STALE_S,
                     wait_s=LOCK_WAIT_S, what="labels commit lock")


def commit_labels(lake: Lake, rows: list[dict], *, teacher_id: str) -> int:
    """Write label rows for ids not labeled yet by this teacher; returns rows written."""
    if not rows:
        return 0
    with commit_lock(lake, teacher_id):
        index = labeled_index(lake.url, teacher_id)
        done = index.refresh(lake, teacher_id)
        fresh = sorted((row for row in rows if row["audio_id"] not in done),
                       key=lambda row: row["audio_id"])
        if not fresh:
            return 0
        ids = [row["audio_id"] for row in fresh]
        wrote = lake.write_part("teacher_labels", fresh, key=content_key(
            "teacher_labels", teacher_id, ids))
        index.add(ids)
        return len(fresh) if wrote else 0
