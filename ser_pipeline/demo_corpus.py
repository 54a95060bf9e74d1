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


# -- the unlabeled pool ------------------------------------------------------------------
#: Pool languages -> their contribution to a voice's valence (see :func:`voice_valence`).
POOL_LANGUAGES: dict[str, float] = {
    "en-us": 0.4, "en-gb": 0.3, "en-gb-scotland": 0.2, "en-029": 0.7, "en-gb-x-rp": 0.1,
    "en-us-nyc": 0.5, "de": 0.3, "es": 0.6, "fr-fr": 0.5, "it": 0.65, "nl": 0.35,
}
#: espeak-ng voice variants -> their contribution to valence. The dev voices use only
#: :data:`DEV_VARIANTS`, which no training voice uses, so every dev voice is unseen.
POOL_VARIANTS: dict[str, float] = {
    "m1": 0.3, "m2": 0.35, "m3": 0.25, "m4": 0.4, "m5": 0.3, "f1": 0.8, "f2": 0.85,
    "f3": 0.75, "klatt": 0.5, "klatt2": 0.45, "croak": 0.1, "m6": 0.3, "m7": 0.2,
    "f4": 0.8, "f5": 0.9, "klatt3": 0.5,
}
DEV_VARIANTS: tuple[str, ...] = ("m6", "m7", "f4", "f5", "klatt3")
TRAIN_VARIANTS: tuple[str, ...] = tuple(v for v in POOL_VARIANTS if v not in DEV_VARIANTS)
# Sentences are built from these parts (16 x 16 x 12 = 3,072 of them); a fixed share of
# the whole sentences is held out for dev, so no dev sentence is ever trained on.
_SUBJECTS = ("The old man", "My sister", "Our teacher", "The driver", "A small child",
             "The new doctor", "Your neighbour", "The manager", "His friend", "The pilot",
             "Every student", "The baker", "Her brother", "The guard", "A tall woman",
             "The farmer")
_PREDICATES = ("found the letter", "painted the kitchen", "missed the last bus",
               "opened the window", "sold the red car", "cooked a large dinner",
               "lost the map", "fixed the old clock", "read the whole book",
               "called the office", "cleaned the garage", "carried the boxes",
               "forgot the tickets", "watched the game", "planted three trees",
               "wrote a long email")
_TAILS = ("this morning", "before the storm", "after lunch", "on Sunday",
          "in the garden", "without a word", "near the station", "last winter",
          "at midnight", "during the party", "by the river", "once again")
DEV_SENTENCE_FRACTION = 0.2
POOL_NOISES: tuple[str, ...] = ("none", "white", "pink", "brown", "hum")


def pool_sentences() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train sentences, dev sentences): disjoint, deterministic."""
    import itertools

    every = [f"{s} {p} {t}." for s, p, t in itertools.product(_SUBJECTS, _PREDICATES, _TAILS)]
    order = np.random.default_rng(12345).permutation(len(every))
    n_dev = int(round(DEV_SENTENCE_FRACTION * len(every)))
    dev = tuple(every[i] for i in sorted(order[:n_dev]))
    train = tuple(every[i] for i in sorted(order[n_dev:]))
    return train, dev


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
    # Clipped to 0..1 so the pool's wider ranges (rates up to 280 wpm) stay on the scale.
    r = min(1.0, max(0.0, (params.rate - 110) / 150))
    p = min(1.0, max(0.0, (params.pitch - 20) / 60))
    a = min(1.0, max(0.0, (params.amplitude - 60) / 120))
    g = min(1.0, max(0.0, params.gap / 8))
    v = voice_valence(params.voice)
    clean = np.array([0.1 + 0.8 * (0.75 * r + 0.25 * a),
                      0.1 + 0.8 * (0.6 * (1 - p) + 0.2 * a + 0.2 * (1 - g)),
                      0.1 + 0.8 * (0.5 * p + 0.5 * v)])
    noise = np.random.default_rng([seed, index, 7]).normal(0.0, 0.03, size=3)
    return tuple(float(x) for x in np.clip(clean + noise, 0.0, 1.0))  # type: ignore[return-value]


def voice_valence(voice: str) -> float:
    """A voice's contribution to valence (0..1): :data:`VOICES`, else language + variant.

    Pool voices are ``<language>+<variant>``; their value averages the language's entry in
    :data:`POOL_LANGUAGES` and the variant's in :data:`POOL_VARIANTS` (female variants read
    as more positive, croaky ones as less), so unseen voices get values of the same kind.
    """
    if voice in VOICES:
        return VOICES[voice]
    language, _, variant = voice.partition("+")
    return 0.5 * POOL_LANGUAGES.get(language, 0.5) + 0.5 * POOL_VARIANTS.get(variant, 0.5)


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


def _ogg_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def with_ogg_serial(data: bytes, serial: int) -> bytes:
    """The Ogg stream with every page's serial number set to ``serial`` (CRCs redone).

    libsndfile draws a random serial per stream, so the same audio encoded twice gave
    other bytes, another ``audio_id``, and a demo teacher that differed between fresh
    runs. The serial only names the stream inside its file; the audio is unchanged.
    """
    out = bytearray(data)
    position = 0
    while position + 27 <= len(out) and out[position:position + 4] == b"OggS":
        segments = out[position + 26]
        size = 27 + segments + sum(out[position + 27:position + 27 + segments])
        out[position + 14:position + 18] = serial.to_bytes(4, "little")
        out[position + 22:position + 26] = b"\0\0\0\0"
        crc = 0
        for byte in out[position:position + size]:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ byte]
        out[position + 22:position + 26] = crc.to_bytes(4, "little")
        position += size
    return bytes(out)


def encode_clip(signal: np.ndarray, index: int) -> tuple[str, bytes, int]:
    """Encode a clip in the format assigned to ``index``: (extension, bytes, rate).

    The bytes are a pure function of the signal and the index (Ogg streams get the
    index as their serial number), so a fresh demo gets the same audio ids every time.
    """
    extension, container, subtype, rate, channels = FORMATS[index % len(FORMATS)]
    audio = soxr.resample(signal, ESPEAK_RATE, rate, quality="HQ") if rate != ESPEAK_RATE else (
        signal)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    if channels == 2:  # a slightly different right channel, so downmixing is exercised
        audio = np.stack([audio, 0.8 * audio], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=container, subtype=subtype)
    data = buffer.getvalue()
    return extension, with_ogg_serial(data, index) if container == "OGG" else data, rate


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
        if not storage.exists(path):  # an existing clip is kept: re-runs write nothing
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


# -- the pool ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolClipParams(ClipParams):
    split: str = "train"  # train: training voices and sentences; dev: unseen ones
    noise: str = "none"  # background noise kind (POOL_NOISES)
    snr_db: float = 0.0  # speech-to-noise ratio when noise != "none"
    lead_s: float = 0.0  # silence before the speech
    tail_s: float = 0.0  # silence after it


def pool_clip_params(index: int, *, seed: int, dev_fraction: float = 0.2) -> PoolClipParams:
    """The synthesis parameters of pool clip ``index`` (deterministic in ``seed``).

    A ``dev_fraction`` share of clips (by a seeded draw) is dev: an unseen voice variant
    (:data:`DEV_VARIANTS`) speaking an unseen sentence; the rest use training variants and
    sentences only.
    """
    rng = np.random.default_rng([seed, index, 31])
    dev = bool(rng.random() < dev_fraction)
    train_sentences, dev_sentences = pool_sentences()
    sentences = dev_sentences if dev else train_sentences
    variants = DEV_VARIANTS if dev else TRAIN_VARIANTS
    languages = sorted(POOL_LANGUAGES)
    noise = POOL_NOISES[int(rng.integers(len(POOL_NOISES)))]
    return PoolClipParams(
        voice=f"{languages[int(rng.integers(len(languages)))]}+"
              f"{variants[int(rng.integers(len(variants)))]}",
        rate=int(rng.integers(100, 281)),
        pitch=int(rng.integers(10, 91)),
        amplitude=int(rng.integers(60, 181)),
        gap=int(rng.integers(0, 11)),
        sentence=sentences[int(rng.integers(len(sentences)))],
        split="dev" if dev else "train",
        noise=noise,
        snr_db=round(float(rng.uniform(5.0, 30.0)), 1) if noise != "none" else 0.0,
        lead_s=round(float(rng.uniform(0.0, 0.4)), 3),
        tail_s=round(float(rng.uniform(0.0, 0.4)), 3),
    )


def background(kind: str, size: int, *, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS background noise: white, pink (1/f), brown (1/f^2) or mains hum."""
    if kind == "hum":
        t = np.arange(size) / rate
        base = rng.choice([50.0, 60.0])
        noise = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) / k
                    for k in range(1, 6))
        noise = noise + 0.05 * rng.standard_normal(size)
    else:
        white = rng.standard_normal(size)
        if kind == "white":
            noise = white
        else:
            power = {"pink": 0.5, "brown": 1.0}[kind]
            spectrum = np.fft.rfft(white)
            freqs = np.fft.rfftfreq(size, d=1 / rate)
            spectrum[1:] /= freqs[1:] ** power
            spectrum[0] = 0
            noise = np.fft.irfft(spectrum, n=size)
    return (noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)).astype(np.float32)


def render_pool_clip(params: PoolClipParams, *, index: int, seed: int,
                     binary: str | None = None) -> np.ndarray:
    """Speech with its pauses and background noise, float32 mono at 16 kHz (soxr)."""
    speech = synthesize(params, binary=binary)
    speech = soxr.resample(speech, ESPEAK_RATE, 16_000, quality="HQ").astype(np.float32)
    lead, tail = (np.zeros(int(s * 16_000), np.float32) for s in (params.lead_s, params.tail_s))
    signal = np.concatenate([lead, speech, tail])
    if params.noise != "none":
        rng = np.random.default_rng([seed, index, 37])
        rms = float(np.sqrt(np.mean(speech ** 2))) or 1e-4
        level = rms / 10 ** (params.snr_db / 20)
        signal = signal + level * background(params.noise, signal.size, rate=16_000, rng=rng)
    peak = float(np.abs(signal).max())
    if peak > 0.99:  # keep the mix inside full scale instead of clipping it
        signal = signal * (0.99 / peak)
    return signal.astype(np.float32)


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
    workers = max_workers or min(4, os.cpu_count() or 1)

    def make(index: int) -> dict:
        params = pool_clip_params(index, seed=seed, dev_fraction=dev_fraction)
        speaker = params.voice.replace("+", "-")
        path = f"audio/{speaker}/p{seed}-{index:05d}.flac"
        row: dict = {"path": path, "arousal": "", "dominance": "", "valence": "",
                     "speaker": speaker}
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

    rows: list[dict] = []
    with progress_bar("synthesizing demo pool", total=n) as advance, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        for row in pool.map(make, range(n)):
            rows.append(row)
            advance(1)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    storage.write_bytes("labels.csv", buffer.getvalue().encode())
    splits = _count(r["split"] for r in rows)
    return {
        "out": storage.url, "clips": n, "train": splits.get("train", 0),
        "dev": splits.get("dev", 0), "voices": len({r["voice"] for r in rows}),
        "sentences": len({r["sentence"] for r in rows}),
        "audio_seconds": round(sum(r["seconds"] for r in rows), 2),
        "labels": storage.uri("labels.csv"),
    }
