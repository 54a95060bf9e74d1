"""Predicting one shard of clips and writing its ``predictions`` part.

Each clip goes through :func:`ser_pipeline.onnx_model.predict_clip` on its own (windows
of one clip share a call, clips never do), so a clip's stored prediction is what ``ser
predict`` gives for the same audio, whichever shard it landed in, and a clip the model
rejects is quarantined without touching the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_pipeline.audio import decode_flac
from ser_pipeline.evaluate.predictors import Predictor
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.onnx_model import predict_clip
from ser_pipeline.quarantine import QuarantineRow


@dataclass(frozen=True)
class ShardOutcome:
    """Counts of one shard; ``first_error`` is the first model error's message."""

    predicted: int
    quarantined: int
    model_errors: int
    first_error: str | None


def _quarantine_row(audio_id: str, corpus: str | None, reason: str, message: str,
                    source_path: str | None = None) -> dict[str, Any]:
    return QuarantineRow(stage="evaluate", corpus=corpus, source_path=source_path,
                         audio_id=audio_id, reason=reason, message=message).to_dict()


def predict_shard(lake: Lake, predictor: Predictor, shard: Sequence[tuple[str, str]], *,
                  window_s: float = 10.0, overlap_s: float = 2.0) -> ShardOutcome:
    """Predict one shard of ``(audio_id, corpus)`` clips; write its ``predictions`` part
    and its ``quarantine`` part (clips that do not decode, are empty, are missing, or that
    the model rejects or answers with non-finite values)."""
    identity = predictor.identity
    corpus_of = dict(shard)
    audio = lake.audio_for(corpus_of, columns=["audio_id", "audio", "source_path"])
    rows, quarantine, seen, model_errors = [], [], set(), 0
    now = utcnow()
    for audio_id, blob, source in zip(audio.column("audio_id").to_pylist(),
                                      audio.column("audio").to_pylist(),
                                      audio.column("source_path").to_pylist(), strict=True):
        seen.add(audio_id)
        corpus = corpus_of[audio_id]
        try:
            signal = decode_flac(blob["bytes"])
        except Exception as error:  # soundfile raises several types for corrupt bytes
            quarantine.append(_quarantine_row(audio_id, corpus, "decode_error", str(error),
                                              source))
            continue
        if signal.size == 0:
            quarantine.append(_quarantine_row(audio_id, corpus, "zero_length",
                                              "the stored audio decodes to 0 samples", source))
            continue
        try:
            values, n_windows = predict_clip(
                predictor.predict, signal, min_samples=predictor.min_samples,
                window_s=window_s, overlap_s=overlap_s, batch_size=predictor.batch_size)
        except Exception as error:  # whatever the model raises: this clip only
            model_errors += 1
            quarantine.append(_quarantine_row(
                audio_id, corpus, "model_error",
                f"{identity.model}: {type(error).__name__}: {error}", source))
            continue
        if not np.isfinite(values).all():
            model_errors += 1
            quarantine.append(_quarantine_row(audio_id, corpus, "non_finite_prediction",
                                              f"{identity.model} predicted {values.tolist()}",
                                              source))
            continue
        rows.append({"model_key": identity.model_key, "model": identity.model,
                     "run_id": identity.run_id, "audio_id": audio_id, "corpus": corpus,
                     "arousal": float(values[0]), "dominance": float(values[1]),
                     "valence": float(values[2]), "n_windows": n_windows,
                     "predicted_at": now})
    for audio_id in sorted(set(corpus_of) - seen):
        quarantine.append(_quarantine_row(audio_id, corpus_of[audio_id], "missing_audio",
                                          "listed in 'splits' but absent from 'audio'"))
    shard_key = content_key("predictions", identity.model_key, sorted(corpus_of))
    lake.write_part("predictions", rows, key=shard_key)
    lake.write_part("quarantine", quarantine, key=content_key("quarantine-evaluate", shard_key))
    return ShardOutcome(
        predicted=len(rows), quarantined=len(quarantine), model_errors=model_errors,
        first_error=next((q["message"] for q in quarantine if q["reason"] == "model_error"),
                         None))
