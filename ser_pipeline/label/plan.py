"""Planning: which clips a teacher still has to label, cut into shards.

Selection is an anti-join: audio ids in the lake (optionally of some corpora) minus ids
that already have a ``teacher_labels`` row for this ``teacher_id``, minus ids this teacher
quarantined. Shards are runs of consecutive audio part files (a shard reads only its
parts, never the whole audio table; ingest writes parts of 64 files, so one part per task
would cost Prefect more than a tiny teacher's work), each part's clips sorted by duration.
A small run is cut so that every worker gets a shard. A shard is ids and part paths, never
arrays, so it travels cheaply to Prefect/Dask workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds

from ser_pipeline.executor import chunked
from ser_pipeline.lake import Lake
from ser_pipeline.quarantine import quarantined_ids

STAGE = "label"


@dataclass(frozen=True)
class Shard:
    """Clips of consecutive audio part files to label together."""

    parts: tuple[str, ...]  # root-relative paths of the audio part files the ids are in
    ids: tuple[str, ...]
    seconds: float  # their total duration


@dataclass(frozen=True)
class PlanCounts:
    """What planning found before any clip is read."""

    clips_in_scope: int
    skipped_already_labeled: int
    skipped_quarantined: int


def labeled_ids(lake: Lake, teacher_id: str) -> set[str]:
    """Audio ids that already have a label row from ``teacher_id``."""
    return lake.ids("teacher_labels", filter=ds.field("teacher_id") == teacher_id)


#: A run is not cut into shards smaller than this to give every worker one: a second
#: shard in flight holds a second set of per-thread buffers (about 0.7 GB for the large
#: teacher), which pays off only when there is work to overlap.
MIN_SPLIT_CLIPS = 64


def shard_length(clips: int, *, shard_size: int, workers: int = 1,
                 min_clips: int = MIN_SPLIT_CLIPS) -> int:
    """Clips per shard: at most ``shard_size``, and small enough for ``workers`` shards,
    but no smaller than ``min_clips`` for that.

    Examples:
        >>> shard_length(10_000, shard_size=256, workers=2)
        256
        >>> shard_length(200, shard_size=256, workers=2)  # both workers get a shard
        100
        >>> shard_length(6, shard_size=256, workers=2)  # too little to split
        64
    """
    if shard_size < 1 or workers < 1:
        raise ValueError(f"shard_size and workers must be >= 1, got {shard_size}, {workers}")
    return max(1, min(shard_size, max(min_clips, math.ceil(clips / workers))))


def plan_shards(lake: Lake, *, teacher_id: str, corpora: Sequence[str] | None = None,
                shard_size: int = 256, workers: int = 1, min_clips: int = MIN_SPLIT_CLIPS,
                ) -> tuple[list[Shard], PlanCounts]:
    """Shards of the clips ``teacher_id`` still has to label, and the plan's counts.

    Shards hold at most ``shard_size`` clips (see :func:`shard_length` for ``workers``
    and ``min_clips``).

    Examples:
        >>> import tempfile
        >>> plan_shards(Lake.open(tempfile.mkdtemp()), teacher_id="t")
        ([], PlanCounts(clips_in_scope=0, skipped_already_labeled=0, skipped_quarantined=0))
    """
    columns = ["audio_id", "corpus", "duration_s"]
    wanted = None
    if corpora:
        wanted = ds.field("corpus").isin(pa.array(list(corpora), pa.string()))
    done = labeled_ids(lake, teacher_id)
    bad = quarantined_ids(lake, stage=STAGE, teacher_id=teacher_id)
    by_part: dict[str, list[tuple[float, str]]] = {}
    seen: set[str] = set()
    total = skipped = skipped_bad = 0
    for part in lake.parts("audio"):
        table = lake.storage.read_parquet(part, columns=columns)
        if wanted is not None:
            table = table.filter(wanted)
        for audio_id, duration in zip(table.column("audio_id").to_pylist(),
                                      table.column("duration_s").to_pylist(), strict=True):
            if audio_id is None or audio_id in seen:
                continue
            seen.add(audio_id)
            total += 1
            if audio_id in done:
                skipped += 1
            elif audio_id in bad:
                skipped_bad += 1
            else:
                by_part.setdefault(part, []).append((float(duration or 0.0), audio_id))
    ordered = [(part, duration, audio_id) for part, items in by_part.items()
               for duration, audio_id in sorted(items)]
    length = shard_length(len(ordered), shard_size=shard_size, workers=workers,
                          min_clips=min_clips)
    shards = [Shard(parts=tuple(dict.fromkeys(part for part, _, _ in chunk)),
                    ids=tuple(audio_id for _, _, audio_id in chunk),
                    seconds=float(sum(duration for _, duration, _ in chunk)))
              for chunk in chunked(ordered, length)]
    return shards, PlanCounts(clips_in_scope=total, skipped_already_labeled=skipped,
                              skipped_quarantined=skipped_bad)
