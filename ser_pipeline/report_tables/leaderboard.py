"""The leaderboard: students ranked per reference, corpus, split and teacher."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ser_pipeline.report_tables.cells import (
    _DIM,
    Block,
    Figure,
    Layout,
    _figure,
    _groups,
    _n_phrase,
)
from ser_pipeline.schemas import LABELS


def leaderboard_layouts(records: Sequence[Mapping[str, Any]]) -> list[Layout]:
    """Candidate layouts of the ``leaderboard`` report: one block per (reference, corpus,
    split, teacher) with short student names; ids in footnotes. Intervals are shown when
    the report has ``ccc_<dimension>_lo``/``_hi`` columns."""
    teachers = sorted({str(r["teacher_id"]) for r in records if r.get("teacher_id")})
    tag = {t: (f"teacher-{i + 1}" if len(teachers) > 1 else "teacher")
           for i, t in enumerate(teachers)}
    footnotes = [f"{tag[t]} = {t}" for t in teachers]
    models: dict[str, list[str]] = {}
    for record in records:
        models.setdefault(str(record.get("student")), [])
        if record.get("model") and str(record["model"]) not in models[str(record["student"])]:
            models[str(record["student"])].append(str(record["model"]))
    footnotes += [f"{student} = {', '.join(ids)}" for student, ids in models.items()
                  if ids and ids != [student]]
    footnotes.insert(0, "ranked by the mean of the A, D, V CCCs (global CCC over all clips)")
    dims = [_DIM[d] for d in LABELS]
    blocks, stacked = [], []
    for (reference, corpus, split, teacher), rows in _groups(
            records, ("reference", "corpus", "split", "teacher_id")).items():
        title = (f"{corpus} · {split} · vs {reference}"
                 + (f" ({tag[str(teacher)]})" if reference == "teacher" and len(tag) > 1
                    else "")
                 + f" · {_n_phrase(rows)}")
        blocks.append(Block(title, ("#", "student", "mean", *dims, "params"), tuple(
            (str(i + 1), str(r.get("student")), Figure(r.get("ccc_mean"), r.get("ccc_mean_lo"),
                                                        r.get("ccc_mean_hi")),
             *(_figure(r, f"ccc_{d}") for d in LABELS),
             int(r["model_params"]) if r.get("model_params") is not None else None)
            for i, r in enumerate(rows)), left=2))
        stacked.append(Block(title, ("#", "student", "dim", "CCC", "params"), tuple(
            (str(i + 1) if d == "mean" else "", str(r.get("student")) if d == "mean" else "",
             d if d == "mean" else _DIM[d],
             Figure(r.get("ccc_mean"), r.get("ccc_mean_lo"), r.get("ccc_mean_hi"))
             if d == "mean" else _figure(r, f"ccc_{d}"),
             (int(r["model_params"]) if r.get("model_params") is not None else None)
             if d == "mean" else "")
            for i, r in enumerate(rows) for d in ("mean", *LABELS)), left=3))
    notes = tuple(footnotes)
    return [Layout("one block per reference", tuple(blocks), notes),
            Layout("one block per reference", tuple(blocks), notes, compact=True),
            Layout("stacked", tuple(stacked), notes, compact=True)]
