"""Small evaluated lakes for the evaluate/db/report tests (no training needed).

``FeaturePredictor`` is a real :class:`ser_pipeline.evaluate.Predictor`: a fixed numpy
function of each window (pitch-ish, brightness-ish, envelope features), so scores are
deterministic and not trivially perfect. ``TinyTorch`` is the same idea as a torch module
for the ONNX/torch adapter tests.
"""

from __future__ import annotations

import numpy as np
from lakes import add_teacher_labels, make_audio_lake

from ser_pipeline.evaluate import ModelIdentity, compare, evaluate
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.robustness_stage import run_robustness
from ser_pipeline.students import MIN_SAMPLES


class FeaturePredictor:
    """Deterministic numpy 'student' whose outputs correlate with the synthetic labels."""

    min_samples = MIN_SAMPLES
    batch_size = 16

    def __init__(self, name: str = "feature-model", *, student: str = "feature",
                 teacher_id: str | None = "toy-teacher", params: int = 3,
                 scale: float = 1.0) -> None:
        self.scale = scale
        self.identity = ModelIdentity(
            model=name, model_key=content_key("feature", name, scale), model_format="torch",
            run_id=name, student=student, teacher_id=teacher_id, params=params,
            size_bytes=params * 4,
        )
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``[n, samples]`` windows (or a list of signals) -> ``[n, 3]``."""
        self.calls += len(batch)
        out = []
        for signal in batch:
            crossings = float(np.mean(signal[1:] * signal[:-1] < 0))
            out.append([crossings * 40 * self.scale, float(np.std(signal)) * 3,
                        float(np.abs(np.diff(signal)).mean()) * 20])
        return np.array(out)


def write_splits(lake: Lake, records: list[dict], *, corpus: str = "toy",
                 split_name: str = "test-split-v1") -> dict[str, list[str]]:
    """Assign clips round-robin to train/dev/test and write the ``splits`` rows."""
    names = ("train", "dev", "test")
    rows = [{"audio_id": r["audio_id"], "corpus": corpus, "split": names[i % 3],
             "split_name": split_name} for i, r in enumerate(records)]
    lake.write_part("splits", rows, key=content_key("splits", corpus, split_name, len(rows)))
    by_split: dict[str, list[str]] = {}
    for row in rows:
        by_split.setdefault(row["split"], []).append(row["audio_id"])
    return by_split


def evaluated_lake(url: str, *, n: int = 12) -> tuple[Lake, list[dict]]:
    """A lake with audio (speakers with a gender), human + teacher labels, splits, a
    quarantine row, two evaluated models (so metrics, fairness slices and predictions
    exist), their comparison, and the robustness suite of the first on its dev clips (so
    robustness rows exist)."""
    lake, records = make_audio_lake(url, n=n, seconds=(0.5, 1.0), genders=("female", "male"))
    add_teacher_labels(lake, records, noise=0.05)
    write_splits(lake, records)
    lake.write_part("quarantine", [{
        "corpus": "toy", "source_path": "broken.wav", "audio_id": None, "stage": "ingest",
        "reason": "truncated", "message": "unexpected end of file",
        "quarantined_at": utcnow()}], key="q-test")
    evaluate(lake, predictor=FeaturePredictor("model-a", params=72_000))
    evaluate(lake, predictor=FeaturePredictor("model-b", student="other", params=2_500_000,
                                              scale=0.5))
    compare(lake, FeaturePredictor("model-a", params=72_000),
            FeaturePredictor("model-b", student="other", params=2_500_000, scale=0.5),
            corpora=["toy"], split="test")
    run_robustness(lake, predictor=FeaturePredictor("model-a", params=72_000),
                   n_resamples=200)
    return lake, records
