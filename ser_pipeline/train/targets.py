"""What a run trains on: one teacher's targets, the stored split, durations, the snapshot.

Targets are the ``teacher_labels`` rows of one ``teacher_id`` (human labels are never read
here); the train/dev split comes from :mod:`ser_pipeline.splits` (stored in the lake, so
evaluation uses the same one). Every input is checked here, before any training starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.dataset as ds

from ser_pipeline.lake import Lake
from ser_pipeline.schemas import LABELS, SAMPLE_RATE, TABLES
from ser_pipeline.splits import DEFAULT_DEV_FRACTION, ensure_splits, split_name_for
from ser_pipeline.students import MIN_SAMPLES
from ser_pipeline.train.hparams import TrainInputError


@dataclass
class TrainData:
    """What a run trains on: ids, targets, and the lake snapshot they came from."""

    teacher_id: str
    teacher_sha256: str | None
    split_name: str
    train_ids: list[str]
    dev_ids: list[str]
    targets: dict[str, tuple[float, float, float]]
    durations: dict[str, float]
    corpora: list[str]
    snapshot: dict[str, list[str]]
    skipped: dict[str, int] = field(default_factory=dict)


def _read_parts(lake: Lake, table: str, parts: list[str], *, columns: list[str],
                filter: ds.Expression | None = None) -> pa.Table:
    if not parts:
        return pa.Table.from_pylist([], schema=TABLES[table]).select(columns)
    dataset = ds.dataset([lake.storage.path(p) for p in parts], schema=TABLES[table],
                         format="parquet", filesystem=lake.storage.fs)
    return dataset.to_table(columns=columns, filter=filter)


def teacher_ids(lake: Lake) -> list[str]:
    """The teacher ids that have labels in the lake."""
    return sorted(lake.ids("teacher_labels", column="teacher_id"))


def prepare_data(lake: Lake, *, teacher_id: str, corpora: Iterable[str] | None = None,
                 dev_fraction: float = DEFAULT_DEV_FRACTION, crop_s: float = 2.0,
                 snapshot: Mapping[str, list[str]] | None = None) -> TrainData:
    """Resolve targets, split and durations, and check them before any training.

    Raises:
        TrainInputError: teacher id without labels, too few clips for the split, or a crop
            longer than every training clip.
    """
    corpora = sorted(set(corpora)) if corpora else None
    split_name = split_name_for(dev_fraction)
    if snapshot is None:
        if not lake.count("teacher_labels", filter=ds.field("teacher_id") == teacher_id):
            known = ", ".join(teacher_ids(lake)) or "none (run 'ser label' first)"
            raise TrainInputError(f"teacher id {teacher_id!r} has no labels in lake {lake.url}; "
                                  f"teacher ids with labels: {known}")
        ensure_splits(lake, corpora=corpora, dev_fraction=dev_fraction)
        snapshot = {table: lake.parts(table) for table in ("audio", "teacher_labels", "splits")}
    labels = _read_parts(
        lake, "teacher_labels", snapshot["teacher_labels"],
        columns=["audio_id", "teacher_sha256", *LABELS, "labeled_at"],
        filter=ds.field("teacher_id") == teacher_id,
    ).sort_by([("labeled_at", "descending"), ("audio_id", "ascending")]).to_pylist()
    targets: dict[str, tuple[float, float, float]] = {}
    shas: dict[str, int] = {}
    non_finite = 0
    for row in labels:  # newest label of a clip wins
        if row["audio_id"] in targets:
            continue
        values = tuple(float(row[label]) for label in LABELS)
        if not all(math.isfinite(v) for v in values):
            non_finite += 1
            continue
        targets[row["audio_id"]] = values
        shas[row["teacher_sha256"]] = shas.get(row["teacher_sha256"], 0) + 1
    audio_filter = ds.field("corpus").isin(corpora) if corpora else None
    audio = _read_parts(lake, "audio", snapshot["audio"],
                        columns=["audio_id", "corpus", "duration_s"], filter=audio_filter)
    durations, corpus_of = {}, {}
    for audio_id, corpus, duration in zip(audio.column("audio_id").to_pylist(),
                                          audio.column("corpus").to_pylist(),
                                          audio.column("duration_s").to_pylist(), strict=True):
        durations.setdefault(audio_id, float(duration))
        corpus_of.setdefault(audio_id, corpus)
    splits_table = _read_parts(lake, "splits", snapshot["splits"], columns=["audio_id", "split"],
                               filter=ds.field("split_name") == split_name)
    split_of: dict[str, str] = {}
    for audio_id, split in zip(splits_table.column("audio_id").to_pylist(),
                               splits_table.column("split").to_pylist(), strict=True):
        split_of.setdefault(audio_id, split)
    train_ids = sorted(i for i in targets if i in durations and split_of.get(i) == "train")
    dev_ids = sorted(i for i in targets if i in durations and split_of.get(i) == "dev")
    skipped = {"labels_without_audio": sum(1 for i in targets if i not in durations),
               "non_finite_labels": non_finite,
               "other_splits": sum(1 for i in targets if i in durations
                                   and split_of.get(i) not in ("train", "dev"))}
    if len(train_ids) < 2 or len(dev_ids) < 2:
        raise TrainInputError(
            f"too few clips for the split {split_name!r}: {len(train_ids)} train and "
            f"{len(dev_ids)} dev clips carry labels of teacher {teacher_id!r} (need at least 2 "
            "each); label more audio with 'ser label' or ingest more clips/speakers"
        )
    longest = max(durations[i] for i in train_ids)
    if crop_s * SAMPLE_RATE > longest * SAMPLE_RATE + 1:
        fits = max(0.1, math.floor(longest * 10) / 10)
        raise TrainInputError(
            f"crop length {crop_s:g} s is longer than every training clip (longest "
            f"{longest:.2f} s); pass a shorter crop, e.g. --crop-s {fits:.1f}"
        )
    if crop_s * SAMPLE_RATE < MIN_SAMPLES:
        raise TrainInputError(f"crop length {crop_s:g} s is shorter than the students' minimum "
                              f"input of {MIN_SAMPLES / SAMPLE_RATE:.3f} s")
    teacher_sha = max(shas, key=shas.get) if shas else None
    used_corpora = sorted({corpus_of[i] for i in train_ids + dev_ids})
    return TrainData(teacher_id=teacher_id, teacher_sha256=teacher_sha, split_name=split_name,
                     train_ids=train_ids, dev_ids=dev_ids, targets=targets,
                     durations=durations, corpora=used_corpora, snapshot=dict(snapshot),
                     skipped=skipped)
