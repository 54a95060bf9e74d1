"""Speech from espeak-ng, encoded the way real corpora hold it, with background noise."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import soxr

from ser_pipeline.demo.voices import ClipParams, PoolClipParams

ESPEAK_RATE = 22_050
INSTALL_HINT = ("install it with 'sudo apt-get install espeak-ng' (Debian/Ubuntu), "
                "'sudo dnf install espeak-ng' (Fedora) or 'brew install espeak-ng' (macOS)")
FORMATS: tuple[tuple[str, str, str, int, int], ...] = (
    ("wav", "WAV", "PCM_16", 22_050, 1),
    ("flac", "FLAC", "PCM_16", 16_000, 1),
    ("ogg", "OGG", "VORBIS", 44_100, 1),
    ("wav", "WAV", "PCM_24", 48_000, 2),
    ("mp3", "MP3", "MPEG_LAYER_III", 24_000, 1),
)

class DemoCorpusError(RuntimeError):
    """The demo corpus cannot be made; the message says how to fix it."""


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


def encode_clip(signal: np.ndarray, index: int, *, rate: int = ESPEAK_RATE,
                ) -> tuple[str, bytes, int]:
    """Encode a clip (sampled at ``rate``) in the format assigned to ``index``:
    (extension, bytes, rate of the file).

    The bytes are a pure function of the signal and the index (Ogg streams get the
    index as their serial number), so a fresh demo gets the same audio ids every time.
    """
    extension, container, subtype, target, channels = FORMATS[index % len(FORMATS)]
    audio = soxr.resample(signal, rate, target, quality="HQ") if rate != target else signal
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    if channels == 2:  # a slightly different right channel, so downmixing is exercised
        audio = np.stack([audio, 0.8 * audio], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, audio, target, format=container, subtype=subtype)
    data = buffer.getvalue()
    return extension, with_ogg_serial(data, index) if container == "OGG" else data, target


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
