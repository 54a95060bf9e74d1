"""What gets scored: the clips of each corpus and split, and the labels they are scored
against (the latest teacher label and the latest human label of each clip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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

    Semantics, the same as the ``latest_teacher_labels`` and ``latest_human_labels``
    views of ``sql/20_views.sql`` (and the CTEs of the ``paper_table``,
    ``teacher_vs_human``, ``student_vs_teacher`` and ``label_drift`` reports):

    - teacher: one row per (``audio_id``, ``teacher_id``), the greatest ``labeled_at``;
      equal times go to the smallest ``teacher_sha256``
      (``ORDER BY labeled_at DESC, teacher_sha256``). Only ``teacher_id``'s rows when it
      is given, every teacher's otherwise;
    - human: one row per ``audio_id``, the greatest ``ingested_at``
      (``ORDER BY ingested_at DESC``); equal times, which the views leave to chance, go to
      the smallest (arousal, dominance, valence) here, so a re-run scores the same rows.

    Returns:
        ``{("teacher", teacher_id) | ("human", teacher_id): {audio_id: (a, d, v)}}``; the
        human key carries the ``teacher_id`` asked for (``None``: all), as metrics rows do.
    """
    refs: References = {}
    id_filter = ds.field("audio_id").isin(ids)
    teacher_filter = id_filter if teacher_id is None else (
        id_filter & (ds.field("teacher_id") == teacher_id))
    teacher_rows = lake.read("teacher_labels", columns=["audio_id", "teacher_id",
                                                        "teacher_sha256", *LABELS,
                                                        "labeled_at"],
                             filter=teacher_filter).to_pylist()
    # Python's sort is stable: order by the tie-break first, then by time, newest first.
    teacher_rows.sort(key=lambda r: (r["teacher_sha256"] is None, r["teacher_sha256"] or ""))
    teacher_rows.sort(key=lambda r: r["labeled_at"], reverse=True)
    chosen: dict[tuple[str, str], dict] = {}
    for row in teacher_rows:
        chosen.setdefault((row["teacher_id"], row["audio_id"]), row)
    for (teacher, audio_id), row in sorted(chosen.items()):
        refs.setdefault(("teacher", teacher), {})[audio_id] = tuple(row[d] for d in LABELS)
    human_rows = lake.read("human_labels", columns=["audio_id", *LABELS, "ingested_at"],
                           filter=id_filter).to_pylist()
    human_rows.sort(key=lambda r: tuple((r[d] is None, r[d] or 0.0) for d in LABELS))
    human_rows.sort(key=lambda r: r["ingested_at"], reverse=True)
    latest: dict[str, dict] = {}
    for row in human_rows:
        latest.setdefault(row["audio_id"], row)
    for audio_id, row in sorted(latest.items()):
        refs.setdefault(("human", teacher_id), {})[audio_id] = tuple(row[d] for d in LABELS)
    return refs

