"""A demo corpus of real synthetic speech (espeak-ng) with learnable "human" labels.

Each clip draws a voice, a speaking rate, a pitch, an amplitude, a word gap and a sentence.
The labels are documented functions of those parameters (see :func:`labels_for`), so a
teacher fine-tuned on them can learn them from the audio. Files are written in a mix of
formats, sample rates and channel counts so ingest meets what real corpora hold:

=========  ==========  ========  ========
format     subtype     rate Hz   channels
=========  ==========  ========  ========
wav        PCM_16      22050     1
flac       PCM_16      16000     1
ogg        VORBIS      44100     1
wav        PCM_24      48000     2
mp3        LAYER III   24000     1
=========  ==========  ========  ========

``labels.csv`` follows the ``csv`` recipe (``path, arousal, dominance, valence, speaker``
on 0..1) plus the synthesis parameters; a fraction of rows has empty labels, the
unlabeled pool the teacher labels later.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import soundfile as sf
import soxr

from ser_pipeline.progress import progress_bar
from ser_pipeline.storage import Storage

ESPEAK_RATE = 22_050
INSTALL_HINT = ("install it with 'sudo apt-get install espeak-ng' (Debian/Ubuntu), "
                "'sudo dnf install espeak-ng' (Fedora) or 'brew install espeak-ng' (macOS)")

# Voice -> its contribution to valence (0..1). Female variants and lively accents read as
# more positive; the mapping is arbitrary but fixed, which is all the demo needs.
VOICES: dict[str, float] = {
    "en-us": 0.4, "en-gb": 0.3, "en-gb-scotland": 0.2, "en-029": 0.7, "en-us+f3": 0.9,
    "en-gb+f4": 0.8, "en-gb-x-rp": 0.1, "de": 0.3, "es": 0.6, "fr": 0.5,
}
FORMATS: tuple[tuple[str, str, str, int, int], ...] = (
    ("wav", "WAV", "PCM_16", 22_050, 1),
    ("flac", "FLAC", "PCM_16", 16_000, 1),
    ("ogg", "OGG", "VORBIS", 44_100, 1),
    ("wav", "WAV", "PCM_24", 48_000, 2),
    ("mp3", "MP3", "MPEG_LAYER_III", 24_000, 1),
)
SENTENCES: tuple[str, ...] = (
    "The train leaves at seven tomorrow morning.",
    "Please put the blue box on the top shelf.",
    "I never expected to see you here today.",
    "We walked along the river until it got dark.",
    "Nobody told me the meeting had been moved.",
    "This is the best soup I have had all year.",
    "Could you call me back after lunch?",
    "The results will be ready by Friday.",
    "She painted the whole fence in one afternoon.",
    "Turn left at the bakery and keep going.",
    "I can't believe we finally won the match.",
    "The library closes early on Sundays.",
    "He forgot his keys again this morning.",
    "Let's try the new place around the corner.",
    "The storm knocked out the power for hours.",
    "Thank you so much for coming tonight.",
    "Where did you put the spare batteries?",
    "Our flight was delayed by three hours.",
    "That was a wonderful surprise.",
    "Keep the door closed, the cat is out.",
    "We need two more chairs for the table.",
    "The garden looks lovely in the spring.",
    "I told you this would happen.",
    "Everything is going to be fine.",
)


class DemoCorpusError(RuntimeError):
    """The demo corpus cannot be made; the message says how to fix it."""


@dataclass(frozen=True)
class ClipParams:
    voice: str
    rate: int  # espeak -s, words per minute (110..260)
    pitch: int  # espeak -p, 0..99 (we use 20..80)
    amplitude: int  # espeak -a, 0..200 (we use 60..180)
    gap: int  # espeak -g, extra pause between words in 10 ms units (0..8)
    sentence: str


def clip_params(index: int, *, seed: int) -> ClipParams:
    """The synthesis parameters of clip ``index`` (deterministic in ``seed``)."""
    rng = np.random.default_rng([seed, index])
    voices = sorted(VOICES)
    return ClipParams(
        voice=voices[int(rng.integers(len(voices)))],
        rate=int(rng.integers(110, 261)),
        pitch=int(rng.integers(20, 81)),
        amplitude=int(rng.integers(60, 181)),
        gap=int(rng.integers(0, 9)),
        sentence=SENTENCES[int(rng.integers(len(SENTENCES)))],
    )


def labels_for(params: ClipParams, *, index: int, seed: int) -> tuple[float, float, float]:
    """The "human" arousal, dominance, valence (0..1) of a clip.

    With ``r``, ``p``, ``a``, ``g`` the rate, pitch, amplitude and word gap scaled to 0..1
    over their ranges and ``v`` the voice's entry in :data:`VOICES`::

        arousal   = 0.1 + 0.8 * (0.75 r + 0.25 a)
        dominance = 0.1 + 0.8 * (0.6 (1 - p) + 0.2 a + 0.2 (1 - g))
        valence   = 0.1 + 0.8 * (0.5 p + 0.5 v)

    plus Gaussian rater noise (sd 0.03), clipped to 0..1. Amplitude has a small weight
    because models normalise loudness per utterance; rate, pitch, pauses and voice are
    audible after normalisation.
    """
    r = (params.rate - 110) / 150
    p = (params.pitch - 20) / 60
    a = (params.amplitude - 60) / 120
    g = params.gap / 8
    v = VOICES[params.voice]
    clean = np.array([0.1 + 0.8 * (0.75 * r + 0.25 * a),
                      0.1 + 0.8 * (0.6 * (1 - p) + 0.2 * a + 0.2 * (1 - g)),
                      0.1 + 0.8 * (0.5 * p + 0.5 * v)])
    noise = np.random.default_rng([seed, index, 7]).normal(0.0, 0.03, size=3)
    return tuple(float(x) for x in np.clip(clean + noise, 0.0, 1.0))  # type: ignore[return-value]


def espeak_binary() -> str:
    """The espeak-ng executable, or a :class:`DemoCorpusError` saying how to install it."""
    found = shutil.which("espeak-ng")
    if not found:
        raise DemoCorpusError(f"espeak-ng is not installed (needed for the demo corpus); "
                              f"{INSTALL_HINT}")
    return found


def synthesize(params: ClipParams, *, binary: str | None = None) -> np.ndarray:
    """Speak ``params.sentence``; returns float32 mono at 22,050 Hz."""
    binary = binary or espeak_binary()
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "clip.wav")
        command = [binary, "-v", params.voice, "-s", str(params.rate), "-p", str(params.pitch),
                   "-a", str(params.amplitude), "-g", str(params.gap), "-w", target,
                   params.sentence]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or not os.path.exists(target):
            raise DemoCorpusError(f"espeak-ng failed for voice {params.voice!r}: "
                                  f"{done.stderr.strip() or done.returncode}")
        signal, rate = sf.read(target, dtype="float32", always_2d=False)
    if rate != ESPEAK_RATE:
        signal = soxr.resample(signal, rate, ESPEAK_RATE).astype(np.float32)
    return signal


def encode_clip(signal: np.ndarray, index: int) -> tuple[str, bytes, int]:
    """Encode a clip in the format assigned to ``index``: (extension, bytes, rate)."""
    extension, container, subtype, rate, channels = FORMATS[index % len(FORMATS)]
    audio = soxr.resample(signal, ESPEAK_RATE, rate, quality="HQ") if rate != ESPEAK_RATE else (
        signal)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    if channels == 2:  # a slightly different right channel, so downmixing is exercised
        audio = np.stack([audio, 0.8 * audio], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=container, subtype=subtype)
    return extension, buffer.getvalue(), rate


def make_demo_corpus(
    out: str,
    *,
    n: int = 120,
    seed: int = 0,
    unlabeled_fraction: float = 0.25,
    max_workers: int | None = None,
) -> dict:
    """Write ``n`` clips and ``labels.csv`` under ``out`` (local path or ``s3://``).

    Deterministic in ``seed``: clip files are named by seed and index, existing ones are
    kept, so re-running (and ingesting again) adds nothing. The samples are a pure
    function of the seed; Ogg files differ between fresh runs only in their random stream
    serial number.

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
    binary = espeak_binary()
    storage = Storage(out)
    workers = max_workers or min(4, os.cpu_count() or 1)
    unlabeled = set(np.random.default_rng([seed, 999]).permutation(n)[
        : int(round(n * unlabeled_fraction))].tolist())

    def make(index: int) -> dict:
        params = clip_params(index, seed=seed)
        signal = synthesize(params, binary=binary)
        extension, data, rate = encode_clip(signal, index)
        speaker = params.voice.replace("+", "-")
        path = f"audio/{speaker}/s{seed}-{index:05d}.{extension}"
        # Ogg Vorbis streams get a random serial number, so a rewrite would change bytes
        # (and audio_id): an existing clip is kept, which makes re-runs idempotent.
        if not storage.exists(path):
            storage.write_bytes(path, data)
        row: dict = {"path": path, "arousal": "", "dominance": "", "valence": "",
                     "speaker": speaker}
        if index not in unlabeled:
            row["arousal"], row["dominance"], row["valence"] = (
                f"{x:.4f}" for x in labels_for(params, index=index, seed=seed))
        row.update(asdict(params))
        row["sample_rate"] = rate
        row["seconds"] = round(signal.size / ESPEAK_RATE, 3)
        return row

    rows: list[dict] = []
    with progress_bar("synthesizing demo corpus", total=n) as advance, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        for row in pool.map(make, range(n)):
            rows.append(row)
            advance(1)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    storage.write_bytes("labels.csv", buffer.getvalue().encode())
    return {
        "out": storage.url,
        "clips": n,
        "labelled": n - len(unlabeled),
        "unlabeled": len(unlabeled),
        "audio_seconds": round(sum(r["seconds"] for r in rows), 2),
        "formats": dict(sorted(_count(r["path"].rsplit(".", 1)[1] for r in rows).items())),
        "labels": storage.uri("labels.csv"),
    }


def _count(items) -> dict:
    from collections import Counter

    return dict(Counter(items))
