"""Readable layouts of a report's result (terminal, markdown, HTML), and the paper table's
records with the teacher's bootstrap intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ser_pipeline.config import Settings
from ser_pipeline.reports.catalog import run_report
from ser_pipeline.reports.formats import to_records
from ser_pipeline.schemas import LABELS


def teacher_intervals(db_path: str | Path, *, params: dict[str, Any] | None = None,
                      settings: Settings | None = None, level: float = 0.95,
                      n_resamples: int = 1000, seed: int = 0) -> dict[tuple, dict[str, Any]]:
    """Bootstrap intervals of the teacher's CCC against the humans, per (corpus, split,
    teacher), from the clips of the ``teacher_vs_human_clips`` report; speakers are
    resampled where the lake knows them. Returns ``{(corpus, split, teacher_id):
    {"human_arousal_lo": ..., ..., "teacher_ci": "95% bootstrap CI over 6 speakers"}}``.
    """
    import numpy as np

    from ser_pipeline.stats import bootstrap_metrics

    wanted = {k: v for k, v in (params or {}).items()
              if k in ("corpus", "split", "teacher_id", "split_name")}
    columns, rows = run_report(db_path, "teacher_vs_human_clips", params=wanted,
                               settings=settings)
    grouped: dict[tuple, list[dict]] = {}
    for record in to_records(columns, rows):
        grouped.setdefault((record["corpus"], record["split"], record["teacher_id"]),
                           []).append(record)
    out = {}
    for key, clips in grouped.items():
        teacher = np.array([[np.nan if c[f"teacher_{d}"] is None else c[f"teacher_{d}"]
                             for d in LABELS] for c in clips], dtype=np.float64)
        human = np.array([[np.nan if c[f"human_{d}"] is None else c[f"human_{d}"]
                           for d in LABELS] for c in clips], dtype=np.float64)
        speakers = [c["speaker"] for c in clips]
        result = bootstrap_metrics(teacher, human, level=level, n_resamples=n_resamples,
                                   seed=seed,
                                   units=speakers if any(speakers) else None)
        entry: dict[str, Any] = {}
        for dimension in LABELS:
            ccc = result.dimension(dimension).ccc
            entry[f"human_{dimension}_lo"] = None if np.isnan(ccc.lo) else float(ccc.lo)
            entry[f"human_{dimension}_hi"] = None if np.isnan(ccc.hi) else float(ccc.hi)
        r = result.resampling
        entry["teacher_ci"] = f"{100 * r.level:g}% bootstrap CI over {r.n_units} {r.unit}s"
        out[key] = entry
    return out


def paper_table_records(db_path: str | Path, *, params: dict[str, Any] | None = None,
                        settings: Settings | None = None) -> list[dict]:
    """The ``paper_table`` report's rows, the teacher rows with their bootstrap interval
    (:func:`teacher_intervals`) added; ``teacher_ci`` says how it was obtained (None on
    student rows, whose interval columns come from ``metrics``)."""
    columns, rows = run_report(db_path, "paper_table", params=params, settings=settings)
    records = [record | {"teacher_ci": None} for record in to_records(columns, rows)]
    if any(r["kind"] == "teacher" for r in records):
        intervals = teacher_intervals(db_path, params=params, settings=settings)
        for record in records:
            if record["kind"] == "teacher":
                record.update(intervals.get((record["corpus"], record["split"],
                                             record["teacher_id"]), {}))
    return records


def report_layouts(name: str, columns: list[str], rows: list[tuple], *,
                   wide: bool = False) -> list[Any]:
    """Candidate terminal/markdown/HTML layouts of a report's result
    (:mod:`ser_pipeline.report_tables`): the paper table, the leaderboard and the
    robustness report have their own; any other report is one table or, when too wide,
    one block per row."""
    from ser_pipeline import report_tables

    records = to_records(columns, rows)
    if name == "paper_table":
        return report_tables.paper_layouts(records, wide=wide)
    if name == "leaderboard" and rows:
        return report_tables.leaderboard_layouts(records)
    if name == "robustness" and rows:
        return report_tables.robustness_layouts(records)
    return report_tables.generic_layouts(columns, rows, title=name)
