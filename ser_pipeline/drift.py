"""Drift of newly labeled audio: teacher label distributions and student disagreement.

The relabel flow labels new clips, then compares them with what the same teacher said on
earlier clips (the reference window, previous weeks) and with what the production student
says on the same new clips. Large shifts mean the students were trained on different data
than they now see, which is when a re-distillation pays off.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.metrics import ccc
from ser_pipeline.schemas import LABELS


def ks_statistic(sample: np.ndarray, reference: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (max distance between the ECDFs)."""
    if sample.size == 0 or reference.size == 0:
        return float("nan")
    grid = np.union1d(sample, reference)
    cdf_sample = np.searchsorted(np.sort(sample), grid, side="right") / sample.size
    cdf_reference = np.searchsorted(np.sort(reference), grid, side="right") / reference.size
    return float(np.abs(cdf_sample - cdf_reference).max())


def drift_report(
    lake: Lake,
    *,
    teacher_id: str,
    label_run_id: str,
    reference_weeks: int = 4,
    threshold: float = 0.25,
    student_predictions: dict[str, np.ndarray] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Compare the clips labeled in ``label_run_id`` with the reference window.

    Args:
        lake: the lake holding ``teacher_labels``.
        teacher_id: the teacher whose labels are compared.
        label_run_id: the labeling run that produced the new clips.
        reference_weeks: how many weeks before the run count as the reference.
        threshold: KS statistic above which a dimension counts as drifted.
        student_predictions: ``audio_id -> [3]`` predictions of the production student on
            the new clips, for the disagreement columns (optional).
        model: the student's name, recorded with the report.

    Returns:
        A summary with one entry per dimension, ``exceeded`` and ``report_id``. The rows are
        also written to the lake's ``drift`` table (idempotent per run).
    """
    labels = lake.read(
        "teacher_labels",
        columns=["audio_id", "run_id", "labeled_at", *LABELS],
        filter=ds.field("teacher_id") == teacher_id,
    )
    is_new = pc.equal(labels.column("run_id"), label_run_id)
    new = labels.filter(is_new)
    summary: dict[str, Any] = {"teacher_id": teacher_id, "label_run_id": label_run_id,
                               "new_clips": new.num_rows, "threshold": threshold,
                               "model": model, "dimensions": {}, "exceeded": False}
    report_id = content_key("drift", teacher_id, label_run_id)
    summary["report_id"] = report_id
    if new.num_rows == 0:
        summary["note"] = "no new clips in this run: nothing to compare"
        return summary
    start = pc.min(new.column("labeled_at")).as_py()
    old = labels.filter(pc.invert(is_new))
    old = old.filter(pc.and_(
        pc.less(old.column("labeled_at"), start),
        pc.greater_equal(old.column("labeled_at"), start - timedelta(weeks=reference_weeks)),
    ))
    summary["reference_clips"] = old.num_rows
    new_ids = new.column("audio_id").to_pylist()
    rows = []
    now = utcnow()
    for index, dimension in enumerate(LABELS):
        new_values = new.column(dimension).to_numpy(zero_copy_only=False).astype(float)
        ref_values = old.column(dimension).to_numpy(zero_copy_only=False).astype(float)
        ks = ks_statistic(new_values, ref_values)
        student_ccc = student_mae = None
        if student_predictions:
            paired = [(student_predictions[i][index], v)
                      for i, v in zip(new_ids, new_values, strict=True) if i in student_predictions]
            if len(paired) >= 2:
                student, teacher = map(np.asarray, zip(*paired, strict=True))
                student_ccc = ccc(student, teacher)
                student_mae = float(np.abs(student - teacher).mean())
        exceeded = bool(np.isfinite(ks) and ks > threshold)
        summary["exceeded"] |= exceeded
        entry = {
            "new_mean": float(new_values.mean()), "new_std": float(new_values.std()),
            "ref_n": int(ref_values.size),
            "ref_mean": float(ref_values.mean()) if ref_values.size else None,
            "ref_std": float(ref_values.std()) if ref_values.size else None,
            "ks": None if not np.isfinite(ks) else ks,
            "student_ccc": student_ccc, "student_mae": student_mae, "exceeded": exceeded,
        }
        summary["dimensions"][dimension] = entry
        rows.append({"report_id": report_id, "label_run_id": label_run_id,
                     "teacher_id": teacher_id, "model": model, "dimension": dimension,
                     "new_n": int(new_values.size), **{k: entry[k] for k in (
                         "new_mean", "new_std", "ref_n", "ref_mean", "ref_std", "ks",
                         "student_ccc", "student_mae", "exceeded")},
                     "threshold": threshold, "created_at": now})
    if not old.num_rows:
        summary["note"] = (f"no reference labels from the {reference_weeks} weeks before this "
                           "run: KS is undefined and no drift is flagged")
    lake.write_part("drift", rows, key=report_id)
    return summary


def student_predictions(
    lake: Lake, *, model_uri: str, audio_ids: list[str], settings: Any = None,
) -> dict[str, np.ndarray]:
    """The production student's A/D/V on the given clips, read from the lake's audio."""
    from ser_pipeline.audio import decode_flac
    from ser_pipeline.executor import chunked
    from ser_pipeline.onnx_model import OnnxModel
    from ser_pipeline.registry import resolve_model_uri

    model = OnnxModel(resolve_model_uri(model_uri, settings=settings), threads=1)
    predictions: dict[str, np.ndarray] = {}
    for shard in chunked(sorted(audio_ids), 64):
        rows = lake.audio_for(shard, columns=["audio_id", "audio"])
        signals = [decode_flac(audio["bytes"]) for audio in rows.column("audio").to_pylist()]
        outputs = model.predict(signals)
        predictions.update(zip(rows.column("audio_id").to_pylist(), outputs, strict=True))
    return predictions
