"""Scoring stored predictions against the selected references: ``metrics`` rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.dataset as ds

from ser_pipeline.evaluate.predictors import ModelIdentity
from ser_pipeline.evaluate.selection import References, Selection
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.lake import Lake, content_key
from ser_pipeline.metrics import dimension_metrics
from ser_pipeline.schemas import LABELS


def read_predictions(lake: Lake, model_key: str, ids: list[str]) -> dict[str, dict]:
    """Stored predictions of ``model_key`` for ``ids``; the earliest row of each clip wins
    (a prediction never changes once scored)."""
    if not ids:
        return {}
    rows = lake.read(
        "predictions",
        columns=["audio_id", "arousal", "dominance", "valence", "predicted_at"],
        filter=(ds.field("model_key") == model_key) & ds.field("audio_id").isin(ids),
    ).to_pylist()
    rows.sort(key=lambda r: r["arousal"], reverse=True)
    rows.sort(key=lambda r: r["predicted_at"])
    earliest: dict[str, dict] = {}
    for row in rows:
        earliest.setdefault(row["audio_id"], row)
    return earliest


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def score_selection(lake: Lake, identity: ModelIdentity, selection: Selection, *,
                    predictions: dict[str, dict], references: References,
                    evaluated_at: Any) -> tuple[list[dict], int]:
    """Metric rows for one selection and every reference; writes them. Returns
    ``(rows, rows_written)``."""
    all_rows, written = [], 0
    for (reference, teacher), labels in sorted(references.items(),
                                               key=lambda kv: (kv[0][0], kv[0][1] or "")):
        ids = [i for i in selection.audio_ids if i in predictions and i in labels]
        if not ids:
            continue
        pred = np.array([[predictions[i][d] for d in LABELS] for i in ids])
        ref = np.array([labels[i] for i in ids], dtype=np.float64)
        scored = "".join(f"{audio_id}|{p!r}|{r!r}\n" for audio_id, p, r in zip(
            ids, pred.tolist(), ref.tolist(), strict=True))
        eval_id = content_key("metrics", identity.model_key, selection.corpus, selection.split,
                              selection.split_name, reference, teacher,
                              sha256_bytes(scored.encode()))
        rows = []
        for dimension, values in dimension_metrics(pred, ref).items():
            rows.append({
                "eval_id": eval_id, "model": identity.model, "model_key": identity.model_key,
                "model_format": identity.model_format, "run_id": identity.run_id,
                "student": identity.student, "teacher_id": teacher,
                "corpus": selection.corpus, "split": selection.split,
                "split_name": selection.split_name, "reference": reference,
                "dimension": dimension, "ccc": _nan_to_none(values["ccc"]),
                "pearson": _nan_to_none(values["pearson"]), "mae": _nan_to_none(values["mae"]),
                "n": values["n"], "model_params": identity.params,
                "model_bytes": identity.size_bytes, "evaluated_at": evaluated_at,
            })
        written += len(rows) if lake.write_part("metrics", rows, key=eval_id) else 0
        all_rows.extend(rows)
    return all_rows, written


def results_table(metric_rows: list[dict]) -> list[dict]:
    """Wide rows (one per corpus/split/reference/teacher) with CCC per dimension."""
    table: dict[tuple, dict] = {}
    for row in metric_rows:
        key = (row["corpus"], row["split"], row["reference"], row["teacher_id"])
        entry = table.setdefault(key, {"corpus": key[0], "split": key[1], "reference": key[2],
                                       "teacher_id": key[3], "n": row["n"]})
        entry[f"ccc_{row['dimension']}"] = row["ccc"]
        entry["n"] = max(entry["n"], row["n"])
    for entry in table.values():
        values = [entry.get(f"ccc_{d}") for d in LABELS]
        finite = [v for v in values if v is not None]
        entry["ccc_mean"] = float(np.mean(finite)) if len(finite) == len(LABELS) else None
    return list(table.values())
