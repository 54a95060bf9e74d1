"""The demo's two folders: a small human-labeled corpus and a larger unlabeled pool."""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import numpy as np
import soundfile as sf

from ser_pipeline.demo.audio import (
    ESPEAK_RATE,
    encode_clip,
    espeak_binary,
    render_pool_clip,
    synthesize,
)
from ser_pipeline.demo.voices import (
    ClipParams,
    clip_params,
    gender_of,
    human_clip_params,
    labels_for,
    pool_clip_params,
)
from ser_pipeline.progress import progress_bar
from ser_pipeline.storage import Storage

#: How the human-labeled corpus is drawn (see :func:`make_demo_corpus`).
STYLES = ("varied", "studio")


def make_demo_corpus(
    out: str,
    *,
    n: int = 120,
    seed: int = 0,
    unlabeled_fraction: float = 0.25,
    style: str = "varied",
    max_workers: int | None = None,
) -> dict:
    """Write ``n`` clips and ``labels.csv`` under ``out`` (local path or ``s3://``).

    ``style`` ``varied`` (the demo's) draws each clip like the pool's training clips
    (:func:`human_clip_params`: many voices, background noise, pauses); ``studio`` draws
    from 10 clean voices and 24 sentences (:func:`clip_params`), as the first demo did.
    A teacher fully fine-tuned on ``studio`` clips judged the pool's varied dev voices at
    CCC 0.32 against their labels (docs/stages/teacher.md).

    Deterministic in ``seed``: clip files are named by seed and index, existing ones are
    kept, so re-running (and ingesting again) adds nothing. The bytes are a pure
    function of the seed (:func:`encode_clip`), so fresh runs give the same audio ids.

    Returns:
        A summary: ``clips``, ``labelled``, ``unlabeled``, ``audio_seconds``, ``formats``.

    Raises:
        DemoCorpusError: espeak-ng is missing or fails.
        ValueError: ``n < 1`` or ``unlabeled_fraction`` outside 0..1.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0.0 <= unlabeled_fraction <= 1.0:
        raise ValueError(f"unlabeled_fraction must be within 0..1, got {unlabeled_fraction}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    binary = espeak_binary()
    storage = Storage(out)
    unlabeled = set(np.random.default_rng([seed, 999]).permutation(n)[
        : int(round(n * unlabeled_fraction))].tolist())

    def make(index: int) -> dict:
        if style == "varied":
            params: ClipParams = human_clip_params(index, seed=seed)
            signal, source_rate = render_pool_clip(params, index=index, seed=seed,  # type: ignore[arg-type]
                                                   binary=binary), 16_000
        else:
            params = clip_params(index, seed=seed)
            signal, source_rate = synthesize(params, binary=binary), ESPEAK_RATE
        extension, data, rate = encode_clip(signal, index, rate=source_rate)
        speaker = params.voice.replace("+", "-")
        path = f"audio/{speaker}/s{seed}-{index:05d}.{extension}"
        if not storage.exists(path):  # an existing clip is kept: re-runs write nothing
            storage.write_bytes(path, data)
        row: dict = {"path": path, "arousal": "", "dominance": "", "valence": "",
                     "speaker": speaker, "gender": gender_of(params.voice)}
        if index not in unlabeled:
            row["arousal"], row["dominance"], row["valence"] = (
                f"{x:.4f}" for x in labels_for(params, index=index, seed=seed))
        # every varied clip is drawn like a pool *training* clip; the sheet's split column
        # would tell ingest so, and the corpus is no split of the pool's
        row.update({k: v for k, v in asdict(params).items() if k != "split"})
        row["sample_rate"] = rate
        row["seconds"] = round(signal.size / source_rate, 3)
        return row

    rows = _synthesize_all(make, n, storage=storage, workers=max_workers,
                           what="synthesizing demo corpus")
    return {
        "out": storage.url,
        "clips": n,
        "labelled": n - len(unlabeled),
        "unlabeled": len(unlabeled),
        "audio_seconds": round(sum(r["seconds"] for r in rows), 2),
        "formats": dict(sorted(_count(r["path"].rsplit(".", 1)[1] for r in rows).items())),
        "labels": storage.uri("labels.csv"),
    }


def _count(items: Iterable[str]) -> dict[str, int]:
    return dict(Counter(items))


def _synthesize_all(make: Callable[[int], dict], n: int, *, storage: Storage,
                    workers: int | None, what: str) -> list[dict]:
    """Rows of clips ``0..n-1`` made on a few threads (espeak-ng runs as a subprocess, so
    threads overlap it), then ``labels.csv`` written once every clip exists."""
    with progress_bar(what, total=n) as advance, \
            ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        rows = []
        for row in pool.map(make, range(n)):
            rows.append(row)
            advance(1)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    storage.write_bytes("labels.csv", buffer.getvalue().encode())
    return rows


def make_demo_pool(
    out: str,
    *,
    n: int = 1000,
    seed: int = 0,
    dev_fraction: float = 0.2,
    max_workers: int | None = None,
) -> dict:
    """Write an unlabeled pool of ``n`` varied clips and ``labels.csv`` under ``out``.

    The pool is what the teacher labels and the students learn from: voices (language +
    espeak-ng variant), sentences (3,072 built from parts), rates, pitches, pauses and
    background noise (white, pink, brown, hum at 5-30 dB SNR) all vary. Clips are 16 kHz
    FLAC (resampled from espeak's 22,050 Hz with soxr). ``labels.csv`` carries a ``split``
    column: dev clips use voices and sentences no training clip uses. Only the dev clips
    carry "human" labels (for the teacher-vs-human and student-vs-human rows of the
    paper's table); training clips have none, as in the paper.

    Returns:
        A summary: ``clips``, ``train``, ``dev``, ``voices``, ``sentences``,
        ``audio_seconds``.

    Raises:
        DemoCorpusError: espeak-ng is missing or fails.
        ValueError: ``n < 2`` or ``dev_fraction`` outside (0, 1).
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be within (0, 1), got {dev_fraction}")
    binary = espeak_binary()
    storage = Storage(out)

    def make(index: int) -> dict:
        params = pool_clip_params(index, seed=seed, dev_fraction=dev_fraction)
        speaker = params.voice.replace("+", "-")
        path = f"audio/{speaker}/p{seed}-{index:05d}.flac"
        row: dict = {"path": path, "arousal": "", "dominance": "", "valence": "",
                     "speaker": speaker, "gender": gender_of(params.voice)}
        if params.split == "dev":
            row["arousal"], row["dominance"], row["valence"] = (
                f"{x:.4f}" for x in labels_for(params, index=index, seed=seed))
        signal = render_pool_clip(params, index=index, seed=seed, binary=binary)
        if not storage.exists(path):  # an existing clip is kept, so re-runs add nothing
            buffer = io.BytesIO()
            sf.write(buffer, signal, 16_000, format="FLAC", subtype="PCM_16")
            storage.write_bytes(path, buffer.getvalue())
        row.update(asdict(params))
        row["seconds"] = round(signal.size / 16_000, 3)
        return row

    rows = _synthesize_all(make, n, storage=storage, workers=max_workers,
                           what="synthesizing demo pool")
    splits = _count(r["split"] for r in rows)
    return {
        "out": storage.url, "clips": n, "train": splits.get("train", 0),
        "dev": splits.get("dev", 0), "voices": len({r["voice"] for r in rows}),
        "sentences": len({r["sentence"] for r in rows}),
        "audio_seconds": round(sum(r["seconds"] for r in rows), 2),
        "labels": storage.uri("labels.csv"),
    }
