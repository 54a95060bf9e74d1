"""Decoding, resampling and the lake's audio encoding (16 kHz mono FLAC).

soundfile decodes, soxr resamples. Anything that cannot become a finite 16 kHz mono
signal raises :class:`AudioError` with a stable ``reason`` code that ingest records in
``quarantine/``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from ser_pipeline.schemas import SAMPLE_RATE


class AudioError(ValueError):
    """A file that cannot be used as audio; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Decoded:
    signal: np.ndarray  # float32, mono, 16 kHz
    orig_sample_rate: int
    orig_channels: int
    orig_format: str  # e.g. "WAV/PCM_16"


def to_mono_16k(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """Downmix ``[frames, channels]`` or ``[frames]`` to mono and resample to 16 kHz."""
    if signal.ndim == 2:
        signal = signal.mean(axis=1)
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    if sample_rate != SAMPLE_RATE:
        signal = soxr.resample(signal, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return signal


def decode(data: bytes) -> Decoded:
    """Decode any format libsndfile reads (wav, flac, ogg, mp3, ...) to 16 kHz mono."""
    if len(data) == 0:
        raise AudioError("empty_file", "the file has 0 bytes")
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            info = (handle.samplerate, handle.channels, f"{handle.format}/{handle.subtype}")
            frames = handle.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as error:
        raise AudioError(_classify(str(error)), str(error)) from None
    except (RuntimeError, ValueError, EOFError) as error:
        raise AudioError("decode_error", str(error)) from None
    if frames.shape[0] == 0:
        raise AudioError("zero_length", "the file decodes to 0 samples")
    if not np.isfinite(frames).all():
        raise AudioError("non_finite_samples", "the signal contains NaN or infinite samples")
    return Decoded(to_mono_16k(frames, info[0]), info[0], info[1], info[2])


def _classify(message: str) -> str:
    lowered = message.lower()
    if "format not recognised" in lowered or "unknown format" in lowered:
        return "not_audio"
    if "unsupported" in lowered or "not supported" in lowered or "codec" in lowered:
        return "unsupported_codec"
    if "truncat" in lowered or "end of file" in lowered or "short" in lowered:
        return "truncated"
    return "decode_error"


def encode_flac(signal: np.ndarray) -> bytes:
    """16 kHz mono float32 -> FLAC bytes (16-bit), as stored in the lake."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(signal, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_flac(data: bytes) -> np.ndarray:
    """Lake FLAC bytes -> 16 kHz mono float32 signal."""
    signal, sample_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    if signal.ndim == 2:
        signal = signal.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        signal = to_mono_16k(signal, sample_rate)
    return signal
