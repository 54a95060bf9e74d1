"""Each perturbation does what its description says, measured on the output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ser_pipeline.perturb import (
    PERTURBATIONS,
    TELEPHONE_PASSBAND_DB,
    TELEPHONE_STOPBAND_DB,
    PerturbationError,
    perturb,
    synthetic_rir,
)
from ser_pipeline.schemas import SAMPLE_RATE

ISSUE_LIST = {"noise_snr20db", "noise_snr10db", "noise_snr5db", "telephone", "gain_minus20db",
              "gain_plus6db_clipped", "room_rt60_500ms", "tilt_minus3db_per_oct"}


def white(seconds: float = 8.0, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))
            ).astype(np.float32)


def speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a syllable-rate envelope and some breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(0.6 ** k * np.sin((k + 1) * phase) for k in range(10))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.3 * voiced * envelope / 3 + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def welch(x: np.ndarray, n: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed, half-overlapped power spectrum (the window keeps the edges of the
    clip from leaking passband energy into the stopband of the measurement)."""
    window = np.hanning(n)
    x = np.asarray(x, dtype=np.float64)
    segments = np.stack([x[i:i + n] * window for i in range(0, x.size - n + 1, n // 2)])
    return np.fft.rfftfreq(n, 1 / SAMPLE_RATE), np.mean(np.abs(np.fft.rfft(segments)) ** 2, 0)


def band_gain_db(x: np.ndarray, y: np.ndarray, low: float, high: float) -> float:
    f, px = welch(x)
    _, py = welch(y)
    band = (f >= low) & (f < high)
    return float(10 * np.log10(py[band].sum() / px[band].sum()))


def test_registry_has_the_issue_list_with_descriptions() -> None:
    assert set(PERTURBATIONS) == ISSUE_LIST
    for name, entry in PERTURBATIONS.items():
        assert entry.name == name
        assert entry.description and "\n" not in entry.description
        json.dumps(entry.describe())  # parameters are plain JSON values
    assert PERTURBATIONS["noise_snr5db"].parameters == {"snr_db": 5.0}


@pytest.mark.parametrize("name", sorted(ISSUE_LIST))
@pytest.mark.parametrize("length", [100, 12_345, 40_001])
def test_length_and_dtype_are_kept(name: str, length: int) -> None:
    signal = speechlike(3.0)[:length]
    out = perturb(signal, name, seed=3)
    assert out.shape == signal.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert not np.array_equal(out, signal)


@pytest.mark.parametrize("name", sorted(ISSUE_LIST))
def test_deterministic_by_seed(name: str) -> None:
    signal = speechlike()
    first, again = perturb(signal, name, seed=[5, 7]), perturb(signal.copy(), name, seed=[5, 7])
    other = perturb(signal, name, seed=[5, 8])
    assert np.array_equal(first, again)
    assert np.array_equal(first, other) != PERTURBATIONS[name].seeded


@pytest.mark.parametrize("snr", [20, 10, 5])
def test_noise_has_the_stated_snr_and_is_white(snr: int) -> None:
    signal = speechlike(4.0)
    out = perturb(signal, f"noise_snr{snr}db", seed=1)
    noise = out.astype(np.float64) - signal
    measured = 10 * np.log10(np.mean(signal.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert measured == pytest.approx(snr, abs=0.01)
    f, spectrum = welch(noise)
    low, high = spectrum[(f > 100) & (f < 4000)].mean(), spectrum[(f > 4000) & (f < 7900)].mean()
    assert abs(10 * np.log10(low / high)) < 0.5


def test_noise_leaves_silence_silent() -> None:
    assert not perturb(np.zeros(1000, np.float32), "noise_snr5db").any()


def test_telephone_band_attenuates_outside_and_keeps_inside() -> None:
    signal = white()
    out = perturb(signal, "telephone")
    assert band_gain_db(signal, out, 0, 200) < -TELEPHONE_STOPBAND_DB
    assert band_gain_db(signal, out, 3600, 8000) < -TELEPHONE_STOPBAND_DB
    assert abs(band_gain_db(signal, out, 400, 3200)) < TELEPHONE_PASSBAND_DB
    # the band edges are the -6 dB points of the filter: half the power is left there
    assert band_gain_db(signal, out, 290, 310) == pytest.approx(-6.0, abs=1.0)
    assert band_gain_db(signal, out, 3390, 3410) == pytest.approx(-6.0, abs=1.0)


def test_gain_minus_20db_is_exact() -> None:
    signal = speechlike()
    out = perturb(signal, "gain_minus20db")
    assert np.array_equal(out, (signal.astype(np.float64) * 0.1).astype(np.float32))


def test_gain_plus_6db_clips_at_one() -> None:
    signal = speechlike() * 3.5  # peaks near 0.8: louder by 6 dB some exceed 1
    out = perturb(signal, "gain_plus6db_clipped")
    scaled = signal.astype(np.float64) * 10 ** (6 / 20)
    inside = np.abs(scaled) <= 1
    assert 0 < (~inside).sum() < signal.size // 4
    np.testing.assert_array_equal(out[inside], scaled[inside].astype(np.float32))
    np.testing.assert_array_equal(out[~inside], np.sign(scaled[~inside]).astype(np.float32))
    assert np.abs(out).max() == 1.0


def schroeder_rt60(response: np.ndarray, top_db: float = -5, bottom_db: float = -35) -> float:
    """RT60 from the Schroeder backward-integrated energy decay (T30 fit, times 2)."""
    energy = np.cumsum((response.astype(np.float64) ** 2)[::-1])[::-1]
    decay = 10 * np.log10(energy / energy[0])
    fit = (decay <= top_db) & (decay >= bottom_db)
    t = np.arange(response.size) / SAMPLE_RATE
    slope = np.polyfit(t[fit], decay[fit], 1)[0]  # dB per second
    return -60.0 / slope


def test_room_has_the_stated_rt60_and_drr_and_keeps_the_level() -> None:
    parameters = PERTURBATIONS["room_rt60_500ms"].parameters
    rir = synthetic_rir(np.random.default_rng(0), rt60_s=0.5, drr_db=0.0)
    # after the direct path the energy decay is linear: fit it over its later part
    assert schroeder_rt60(rir[1:]) == pytest.approx(parameters["rt60_s"], rel=0.05)
    impulse = np.zeros(SAMPLE_RATE, np.float32)
    impulse[0] = 1.0
    response = perturb(impulse, "room_rt60_500ms", seed=4)
    direct, tail = response[0] ** 2, np.sum(response[1:].astype(np.float64) ** 2)
    assert 10 * np.log10(direct / tail) == pytest.approx(parameters["drr_db"], abs=0.01)
    assert schroeder_rt60(response[1:]) == pytest.approx(0.5, rel=0.05)
    assert np.abs(response[8000:]).max() < 1e-9  # the response is RT60 long (FFT rounding)
    signal = speechlike()
    out = perturb(signal, "room_rt60_500ms")
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) == pytest.approx(
        np.sqrt(np.mean(signal.astype(np.float64) ** 2)), rel=1e-5)


def test_tilt_has_the_stated_slope_and_keeps_the_level() -> None:
    signal = white()
    out = perturb(signal, "tilt_minus3db_per_oct")
    edges = [125, 250, 500, 1000, 2000, 4000]
    gains = [band_gain_db(signal, out, lo, 2 * lo) for lo in edges]
    slope = np.polyfit(np.log2(edges), gains, 1)[0]
    assert slope == pytest.approx(PERTURBATIONS["tilt_minus3db_per_oct"].parameters[
        "db_per_octave"], abs=0.05)
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) == pytest.approx(
        np.sqrt(np.mean(signal.astype(np.float64) ** 2)), rel=1e-5)


def test_empty_signal_stays_empty() -> None:
    for name in PERTURBATIONS:
        assert perturb(np.zeros(0, np.float32), name).shape == (0,)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(PerturbationError, match="unknown perturbation 'reverb'; choose one of"):
        perturb(speechlike(), "reverb")
    with pytest.raises(PerturbationError, match="1-D mono signal"):
        perturb(np.zeros((2, 100)), "telephone")
    with pytest.raises(PerturbationError, match="NaN or infinite"):
        perturb(np.array([0.0, np.nan]), "gain_minus20db")
