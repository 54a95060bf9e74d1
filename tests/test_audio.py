"""ser_pipeline.audio: decoding real files in many formats and naming every failure."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_pipeline.audio import (
    REASONS,
    AudioError,
    decode,
    decode_flac,
    encode_flac,
    is_silent,
    to_mono_16k,
)

DATA = Path(__file__).parent / "data"

FIXTURES = sorted(p for p in DATA.iterdir() if p.suffix in {".wav", ".flac", ".ogg", ".mp3"})


def encoded(signal: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def speech() -> tuple[np.ndarray, int]:
    signal, rate = sf.read(DATA / "hello_22k_pcm16.wav", dtype="float32")
    return signal, rate


def reason_of(data: bytes, **options) -> str:
    with pytest.raises(AudioError) as caught:
        decode(data, **options)
    assert caught.value.message, "every quarantine reason carries the decoder's words"
    return caught.value.reason


def test_fixtures_cover_the_formats_and_stay_small():
    assert {p.suffix for p in FIXTURES} == {".wav", ".flac", ".ogg", ".mp3"}
    assert sum(p.stat().st_size for p in FIXTURES) < 1_000_000


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_decode_any_format_to_16k_mono(path):
    info = sf.info(path)
    decoded = decode(path.read_bytes())
    assert decoded.signal.dtype == np.float32 and decoded.signal.ndim == 1
    assert decoded.orig_sample_rate == info.samplerate
    assert decoded.orig_channels == info.channels
    assert decoded.orig_format == f"{info.format}/{info.subtype}"
    # MP3 adds encoder delay/padding; everything else keeps its length exactly.
    tolerance = 0.1 if path.suffix == ".mp3" else 0.002
    assert decoded.signal.size / 16_000 == pytest.approx(info.duration, abs=tolerance)
    assert 0.01 < np.abs(decoded.signal).max() <= 1.0


def test_resampling_preserves_pitch():
    rate = 44_100
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone], axis=1)
    mono = to_mono_16k(stereo, rate)
    assert mono.size == 16_000
    spectrum = np.abs(np.fft.rfft(mono))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)


def test_downmix_averages_channels():
    left = np.full(1600, 0.4, np.float32)
    right = np.zeros(1600, np.float32)
    mono = to_mono_16k(np.stack([left, right], axis=1), 16_000)
    assert np.allclose(mono, 0.2)


def test_flac_round_trip_is_16_bit_exact():
    signal = decode((DATA / "okay_16k.flac").read_bytes()).signal
    data = encode_flac(signal)
    assert sf.info(io.BytesIO(data)).format == "FLAC"
    assert np.max(np.abs(decode_flac(data) - signal)) < 1 / 2**15 + 1e-7


def test_empty_file():
    assert reason_of(b"") == "empty_file"


def test_not_audio_with_audio_extension():
    assert reason_of(b"id,label\n1,happy\n" * 20) == "not_audio"


def test_unsupported_codec_wav_tag():
    data = (DATA / "hello_22k_pcm16.wav").read_bytes()
    assert data[20:22] == struct.pack("<H", 1)
    wma = data[:20] + struct.pack("<H", 0x0161) + data[22:]  # Windows Media Audio in RIFF
    with pytest.raises(AudioError) as caught:
        decode(wma)
    assert caught.value.reason == "unsupported_codec"
    assert "0x0161" in caught.value.message


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"),
                                         ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_truncated_files(fmt, subtype):
    signal, rate = speech()
    data = encoded(signal, rate, fmt, subtype)
    assert decode(data).signal.size > 0
    assert reason_of(data[: len(data) // 2]) == "truncated"


def test_a_few_bytes_of_mp3_are_corrupt():
    signal, rate = speech()
    data = encoded(signal, rate, "MP3", "MPEG_LAYER_III")
    assert reason_of(data[:100]) == "corrupt"


def test_wav_with_only_a_header_is_truncated():
    signal, rate = speech()
    assert reason_of(encoded(signal, rate, "WAV", "PCM_16")[:44]) == "truncated"


def test_zero_length_signal():
    data = encoded(np.zeros(0, np.float32), 16_000, "WAV", "PCM_16")
    assert reason_of(data) == "zero_length"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(bad):
    signal, rate = speech()
    signal = signal.copy()
    signal[500] = bad
    assert reason_of(encoded(signal, rate, "WAV", "FLOAT")) == "non_finite_samples"


def test_too_long_is_judged_from_the_header():
    data = (DATA / "hello_22k_pcm16.wav").read_bytes()
    assert reason_of(data, max_duration_s=0.5) == "too_long"
    assert decode(data, max_duration_s=2.0).signal.size > 0


def test_reason_codes_are_declared():
    assert {"empty_file", "not_audio", "unsupported_codec", "truncated", "zero_length",
            "non_finite_samples", "too_long"} <= set(REASONS)


def test_silence_detection():
    assert is_silent(np.zeros(16_000, np.float32))
    assert is_silent(np.full(16_000, 5e-5, np.float32))
    assert not is_silent(decode((DATA / "thanks_16k.ogg").read_bytes()).signal)
