"""Planning: which clips a teacher still has to label, cut into shards.

Selection is an anti-join: audio ids in the lake (optionally of some corpora) minus ids
that already have a ``teacher_labels`` row for this ``teacher_id``, minus ids this teacher
quarantined. Shards are planned per audio part file (a shard reads one Parquet part, never
the whole audio table) and sorted by duration so batches need little padding. A shard is
ids and a part path, never arrays, so it travels cheaply to Prefect/Dask workers.
"""

from __future__ import annotations

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
    """Clips of one audio part file to label together (sorted by duration)."""

    part: str  # root-relative path of the audio part file
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


def plan_shards(lake: Lake, *, teacher_id: str, corpora: Sequence[str] | None = None,
                shard_size: int = 64) -> tuple[list[Shard], PlanCounts]:
    """Shards of the clips ``teacher_id`` still has to label, and the plan's counts.

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
    shards = []
    for part, items in by_part.items():
        items.sort()
        for chunk in chunked(items, shard_size):
            shards.append(Shard(part=part, ids=tuple(a for _, a in chunk),
                                seconds=float(sum(d for d, _ in chunk))))
    return shards, PlanCounts(clips_in_scope=total, skipped_already_labeled=skipped,
                              skipped_quarantined=skipped_bad)
