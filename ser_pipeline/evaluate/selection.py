"""What gets scored: the clips of each corpus and split, and the labels they are scored
against (the latest teacher label and the latest human label of each clip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds

from ser_pipeline.evaluate.errors import EvaluateError
from ser_pipeline.lake import Lake
from ser_pipeline.schemas import LABELS

#: Split label used for a corpus evaluated whole because it has no ``splits`` rows.
WHOLE_CORPUS_SPLIT = "all"

#: ``{(reference, teacher_id): {audio_id: (arousal, dominance, valence)}}``
References = dict[tuple[str, str | None], dict[str, tuple[float, float, float]]]


@dataclass(frozen=True)
class Selection:
    """The clips of one corpus and split that get scored together."""

    corpus: str
    split: str
    split_name: str | None
    audio_ids: tuple[str, ...]


def select_clips(lake: Lake, *, corpora: Sequence[str], splits: Sequence[str],
                 split_name: str | None = None) -> tuple[list[Selection], list[str]]:
    """The clips to evaluate per (corpus, split), plus notices about empty selections.

    A corpus with rows in ``splits`` contributes its ``splits`` clips (one split
    definition: ``split_name``, or the corpus's only one); a corpus without any is
    evaluated whole as split ``all``.
    """
    known = lake.ids("audio", column="corpus")
    unknown = sorted(set(corpora) - known)
    if unknown:
        raise EvaluateError(
            f"corpus {', '.join(map(repr, unknown))} is not in the lake {lake.url} "
            f"(corpora there: {', '.join(sorted(known)) or 'none; run ser ingest first'})"
        )
    split_rows = lake.read("splits", columns=["audio_id", "corpus", "split", "split_name"],
                           filter=ds.field("corpus").isin(list(corpora))).to_pylist()
    selections, notices = [], []
    for corpus in corpora:
        rows = [r for r in split_rows if r["corpus"] == corpus]
        if not rows:
            ids = lake.ids("audio", filter=ds.field("corpus") == corpus)
            selections.append(Selection(corpus, WHOLE_CORPUS_SPLIT, None, tuple(sorted(ids))))
            notices.append(f"corpus {corpus!r} has no rows in 'splits': evaluated whole "
                           f"({len(ids)} clips) as split {WHOLE_CORPUS_SPLIT!r}")
            continue
        names = sorted({r["split_name"] for r in rows if r["split_name"]})
        chosen = split_name if split_name in names else (names[0] if len(names) == 1 else None)
        if chosen is None and names:
            raise EvaluateError(
                f"corpus {corpus!r} has several split definitions ({', '.join(names)})"
                + (f" and none is {split_name!r}" if split_name else "")
                + "; choose one with --split-name"
            )
        for split in splits:
            ids = sorted({r["audio_id"] for r in rows
                          if r["split"] == split and (chosen is None or r["split_name"] == chosen)})
            if ids:
                selections.append(Selection(corpus, split, chosen, tuple(ids)))
            else:
                notices.append(f"corpus {corpus!r} has no {split!r} clips in split "
                               f"{chosen!r}: skipped")
    return selections, notices


def latest_references(lake: Lake, ids: list[str], *, teacher_id: str | None) -> References:
    """The labels each clip is scored against: its latest teacher and human labels.

    Read through the ``latest_teacher_labels`` and ``latest_human_labels`` views of
    ``sql/20_views.sql`` (:func:`ser_pipeline.db.lake_views`: an in-memory DuckDB
    connection over the lake), the one definition the reports use too:

    - teacher: one row per (``audio_id``, ``teacher_id``), the greatest ``labeled_at``;
      equal times go to the smallest ``teacher_sha256``, then the smallest A/D/V. Only
      ``teacher_id``'s rows when it is given, every teacher's otherwise;
    - human: one row per ``audio_id``, the greatest ``ingested_at``; equal times go to the
      smallest (arousal, dominance, valence), so a re-run scores the same rows.

    Returns:
        ``{("teacher", teacher_id) | ("human", teacher_id): {audio_id: (a, d, v)}}``; the
        human key carries the ``teacher_id`` asked for (``None``: all), as metrics rows do.
    """
    from ser_pipeline.db import lake_views

    refs: References = {}
    if not ids:
        return refs
    columns = ", ".join(LABELS)
    with lake_views(lake, ("latest_teacher_labels", "latest_human_labels")) as con:
        con.register("evaluated_ids", pa.table({"audio_id": pa.array(ids, pa.string())}))
        teacher_rows = con.execute(
            f"SELECT teacher_id, audio_id, {columns} FROM latest_teacher_labels "
            "WHERE audio_id IN (SELECT audio_id FROM evaluated_ids) "
            "AND ($teacher_id IS NULL OR teacher_id = $teacher_id) "
            "ORDER BY teacher_id, audio_id", {"teacher_id": teacher_id}).fetchall()
        human_rows = con.execute(
            f"SELECT audio_id, {columns} FROM latest_human_labels "
            "WHERE audio_id IN (SELECT audio_id FROM evaluated_ids) ORDER BY audio_id"
        ).fetchall()
    for teacher, audio_id, *values in teacher_rows:
        refs.setdefault(("teacher", teacher), {})[audio_id] = tuple(values)
    for audio_id, *values in human_rows:
        refs.setdefault(("human", teacher_id), {})[audio_id] = tuple(values)
    return refs


@dataclass(frozen=True)
class ClipMetadata:
    """What the lake's ``audio`` table says about each scored clip's speaker.

    Attributes:
        speaker: ``audio.speaker`` per clip (None where unknown).
        gender: ``audio.gender`` per clip (None where unknown, and in parts written before
            the column existed).
    """

    speaker: dict[str, str | None]
    gender: dict[str, str | None]

    def speakers_of(self, ids: Sequence[str]) -> list[str | None] | None:
        """Speaker per clip, or None when no clip has one (then clips are resampled)."""
        values = [self.speaker.get(i) for i in ids]
        return values if any(v for v in values) else None

    def genders_of(self, ids: Sequence[str]) -> list[str | None] | None:
        """Gender per clip, or None when no clip has one (no fairness slices)."""
        values = [self.gender.get(i) for i in ids]
        return values if any(v for v in values) else None


def clip_metadata(lake: Lake, ids: Sequence[str]) -> ClipMetadata:
    """Speaker and gender of ``ids`` from ``audio`` (never reading the audio bytes); a clip
    stored twice keeps its first non-empty value."""
    speaker: dict[str, str | None] = {}
    gender: dict[str, str | None] = {}
    if ids:
        rows = lake.read("audio", columns=["audio_id", "speaker", "gender"],
                         filter=ds.field("audio_id").isin(list(ids))).to_pylist()
        for row in rows:
            if not speaker.get(row["audio_id"]):
                speaker[row["audio_id"]] = row["speaker"] or None
            if not gender.get(row["audio_id"]):
                gender[row["audio_id"]] = row["gender"] or None
    return ClipMetadata(speaker, gender)
