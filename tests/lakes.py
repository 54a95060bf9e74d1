"""Build small, real lakes for tests without running ingest.

Clips are synthetic harmonic tones whose pitch, brightness and tremolo rate are drawn per
clip. ``synthetic_labels`` maps those parameters to A/D/V, so a student can learn them
from the waveform (per-utterance normalisation hides loudness, so loudness is not used).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from ser_pipeline.audio import encode_flac
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.schemas import SAMPLE_RATE


def tone(*, f0: float, brightness: float, tremolo_hz: float, seconds: float,
         seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    harmonics = sum((brightness ** k) * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(8))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * tremolo_hz * t)
    signal = harmonics * envelope + 0.01 * rng.standard_normal(t.size)
    return (0.3 * signal / np.abs(signal).max()).astype(np.float32)


def synthetic_params(index: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed * 100_003 + index)
    return {"f0": float(rng.uniform(90, 320)), "brightness": float(rng.uniform(0.1, 0.9)),
            "tremolo_hz": float(rng.uniform(1, 8))}


def synthetic_labels(params: dict) -> tuple[float, float, float]:
    """Arousal follows pitch, dominance brightness, valence tremolo rate (all 0..1)."""
    return ((params["f0"] - 90) / 230, (params["brightness"] - 0.1) / 0.8,
            (params["tremolo_hz"] - 1) / 7)


def make_audio_lake(
    url: str, *, n: int = 24, seconds: tuple[float, float] = (1.0, 3.0), corpus: str = "toy",
    speakers: int = 6, human_labels: bool = True, seed: int = 0,
    genders: tuple[str, ...] | None = None,
) -> tuple[Lake, list[dict]]:
    """Write ``n`` clips (and optionally human labels) to a lake; returns the lake and
    per-clip records ``{audio_id, params, labels, signal, speaker, gender}``. Speaker ``k``
    has gender ``genders[k % len(genders)]`` when ``genders`` is given (else none)."""
    lake = Lake.open(url)
    rng = np.random.default_rng(seed)
    records, audio_rows, label_rows = [], [], []
    for index in range(n):
        params = synthetic_params(index, seed)
        signal = tone(**params, seconds=float(rng.uniform(*seconds)), seed=seed + index)
        flac = encode_flac(signal)
        audio_id = hashlib.sha256(flac).hexdigest()
        labels = synthetic_labels(params)
        speaker = f"spk{index % speakers}" if speakers else None
        gender = genders[(index % speakers) % len(genders)] if genders and speakers else None
        records.append({"audio_id": audio_id, "params": params, "labels": labels,
                        "signal": signal, "speaker": speaker, "gender": gender})
        audio_rows.append({
            "audio_id": audio_id, "audio": {"bytes": flac, "path": f"clip{index:04d}.flac"},
            "corpus": corpus, "source_path": f"clip{index:04d}.flac",
            "duration_s": signal.size / SAMPLE_RATE, "orig_sample_rate": SAMPLE_RATE,
            "orig_channels": 1, "orig_format": "FLAC/PCM_16",
            "speaker": speaker, "split": None, "is_silent": False, "ingested_at": utcnow(),
            "gender": gender,
        })
        label_rows.append({"audio_id": audio_id, "corpus": corpus, "arousal": labels[0],
                           "dominance": labels[1], "valence": labels[2],
                           "source_scale": "0-1", "ingested_at": utcnow()})
    lake.write_part("audio", audio_rows, key=content_key(corpus, "audio", seed, n))
    if human_labels:
        lake.write_part("human_labels", label_rows, key=content_key(corpus, "human", seed, n))
    return lake, records


def add_teacher_labels(lake: Lake, records: list[dict], *, teacher_id: str = "toy-teacher",
                       noise: float = 0.0, seed: int = 0) -> None:
    """Teacher labels equal to the synthetic labels (plus optional noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for record in records:
        a, d, v = (np.array(record["labels"]) + noise * rng.standard_normal(3)).tolist()
        rows.append({"audio_id": record["audio_id"], "teacher_id": teacher_id,
                     "teacher_sha256": "0" * 64, "arousal": a, "dominance": d, "valence": v,
                     "n_windows": 1, "labeled_at": utcnow(), "run_id": "test"})
    lake.write_part("teacher_labels", rows, key=content_key(teacher_id, len(rows), seed))


def bench_training_lake(*, clips: int, seconds: tuple[float, float],
                        prefix: str) -> tuple[Lake, str]:
    """A fresh lake in a new temporary folder (named ``prefix...``) of ``clips`` clips from
    20 speakers with teacher labels (the synthetic ones plus noise 0.02): what the
    training benchmarks train on when given no lake. Returns the lake and the teacher id."""
    url = str(Path(tempfile.mkdtemp(prefix=prefix)) / "lake")
    lake, records = make_audio_lake(url, n=clips, seconds=seconds, speakers=20)
    add_teacher_labels(lake, records, teacher_id="synthetic-teacher", noise=0.02)
    return lake, "synthetic-teacher"
