"""Seeded, documented perturbations of 16 kHz mono float32 signals.

Each perturbation is one named entry of :data:`PERTURBATIONS` with its parameters and a
one-line description. All of them keep the length, return float32, and are deterministic
given ``seed`` (the ones without randomness ignore it):

======================  ====================================================================
name                    what it does
======================  ====================================================================
noise_snr20db           white Gaussian noise at 20 dB SNR (clip power over noise power)
noise_snr10db           the same at 10 dB
noise_snr5db            the same at 5 dB
telephone               to 8 kHz, 300-3,400 Hz band-pass (257-tap Blackman FIR), back to
                        16 kHz: energy below 200 Hz and above 3,600 Hz at least 60 dB
                        down, 400-3,200 Hz within 0.5 dB
gain_minus20db          ×10^(−20/20) = ×0.1
gain_plus6db_clipped    ×10^(6/20) ≈ ×1.995, then clipped to [−1, 1]
room_rt60_500ms         convolved with a synthetic room impulse response: RT60 0.5 s, DRR 0 dB
tilt_minus3db_per_oct   spectral tilt of −3 dB per octave (pivot 1 kHz, flat below 50 Hz)
======================  ====================================================================

The room and the tilt keep the clip's RMS level (as audEERING's ser-tests keep the level
for its filters), so they test reverberation and spectral shape, not loudness; noise adds
power, the gains change only the level, clipping distorts.

Silence stays silence under noise (an SNR relative to no signal has no noise level).

Examples:
    >>> import numpy as np
    >>> signal = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    >>> sorted(PERTURBATIONS)[:3]
    ['gain_minus20db', 'gain_plus6db_clipped', 'noise_snr10db']
    >>> noisy = perturb(signal, "noise_snr10db", seed=1)
    >>> noisy.dtype, noisy.shape == signal.shape
    (dtype('float32'), True)
    >>> round(float(10 * np.log10(np.mean(signal.astype(np.float64) ** 2)
    ...                           / np.mean((noisy - signal.astype(np.float64)) ** 2))), 2)
    10.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import soxr

from ser_pipeline.schemas import SAMPLE_RATE

Seed = int | Sequence[int]

#: The telephone band: its edges (Hz), the narrow-band rate and the FIR length.
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_RATE = 8000
TELEPHONE_TAPS = 257
#: The stated stopband: energy below 200 Hz and above 3,600 Hz loses at least this much
#: (measured with Hann-windowed spectra of white noise: about 84 dB and 108 dB).
TELEPHONE_STOPBAND_DB = 60.0
#: The stated passband: 400-3,200 Hz keeps its energy within this many dB.
TELEPHONE_PASSBAND_DB = 0.5


class PerturbationError(ValueError):
    """A signal or a name the perturbations cannot take; the message says what to pass."""


@dataclass(frozen=True, eq=False)
class Perturbation:
    """One named perturbation.

    Attributes:
        name: Registry key, stable (reports and tables store it).
        description: One line for reports.
        parameters: The values that define it (JSON types).
        function: ``function(signal_float64, rng, **parameters) -> signal``.
        seeded: Whether the seed matters (noise, room); the others are deterministic.
    """

    name: str
    description: str
    parameters: dict[str, float | str]
    function: Callable[..., np.ndarray] = field(repr=False)
    seeded: bool = False

    def __call__(self, signal: np.ndarray, *, seed: Seed = 0) -> np.ndarray:
        """The perturbed signal: float32, the same length as ``signal``."""
        x = _as_signal(signal)
        if x.size == 0:
            return x.astype(np.float32)
        out = self.function(x, np.random.default_rng(seed), **self.parameters)
        return np.ascontiguousarray(out[:x.size], dtype=np.float32)

    def describe(self) -> dict[str, object]:
        """``{name, description, parameters, seeded}`` for reports and manifests."""
        return {"name": self.name, "description": self.description,
                "parameters": dict(self.parameters), "seeded": self.seeded}


def _as_signal(signal: np.ndarray) -> np.ndarray:
    x = np.asarray(signal)
    if x.ndim != 1:
        raise PerturbationError(f"expected a 1-D mono signal at {SAMPLE_RATE} Hz, got shape "
                                f"{x.shape}; downmix and resample first (audio.to_mono_16k)")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise PerturbationError("the signal holds NaN or infinite samples; decode it with "
                                "ser_pipeline.audio.decode, which rejects them")
    return x


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


def _keep_level(out: np.ndarray, x: np.ndarray) -> np.ndarray:
    level = _rms(out)
    return out * (_rms(x) / level) if level > 0 else out


# -- the perturbations ------------------------------------------------------------------------
def add_noise(x: np.ndarray, rng: np.random.Generator, *, snr_db: float) -> np.ndarray:
    """White Gaussian noise scaled so that mean(x²) / mean(noise²) is exactly ``snr_db``."""
    power = float(np.mean(x * x))
    if power == 0:
        return x.copy()
    noise = rng.standard_normal(x.size)
    noise *= math.sqrt(power / (10 ** (snr_db / 10)) / float(np.mean(noise * noise)))
    return x + noise


def gain(x: np.ndarray, rng: np.random.Generator, *, gain_db: float,
         clip: float = 0.0) -> np.ndarray:
    """Multiply by 10^(gain_db/20); clip to ±``clip`` when it is positive."""
    out = x * 10 ** (gain_db / 20)
    return np.clip(out, -clip, clip) if clip > 0 else out


def bandpass_fir(low_hz: float, high_hz: float, *, rate: int, taps: int) -> np.ndarray:
    """Linear-phase band-pass: the difference of two Blackman-windowed sinc low-passes
    (cut-offs at their -6 dB points, stopband ~74 dB down, transition ~5.5·rate/taps)."""
    n = np.arange(taps) - (taps - 1) / 2
    window = np.blackman(taps)

    def lowpass(cutoff: float) -> np.ndarray:
        h = 2 * cutoff / rate * np.sinc(2 * cutoff / rate * n) * window
        return h / h.sum()

    return lowpass(high_hz) - lowpass(low_hz)


def telephone(x: np.ndarray, rng: np.random.Generator, *, low_hz: float, high_hz: float,
              rate: int, taps: int) -> np.ndarray:
    """Down to ``rate`` (soxr), band-pass ``low_hz``-``high_hz``, back up to 16 kHz."""
    narrow = soxr.resample(x, SAMPLE_RATE, rate, quality="HQ")
    narrow = np.convolve(narrow, bandpass_fir(low_hz, high_hz, rate=rate, taps=int(taps)),
                         mode="same")
    out = soxr.resample(narrow, rate, SAMPLE_RATE, quality="HQ")
    return np.pad(out, (0, max(0, x.size - out.size)))[:x.size]


def synthetic_rir(rng: np.random.Generator, *, rt60_s: float, drr_db: float,
                  rate: int = SAMPLE_RATE) -> np.ndarray:
    """A room impulse response: a unit direct path, then Gaussian noise whose amplitude
    decays by 60 dB over ``rt60_s`` (energy -60 dB/RT60), scaled to the direct-to-reverberant
    ratio ``drr_db``, ``rt60_s`` long.

    Examples:
        >>> rir = synthetic_rir(np.random.default_rng(0), rt60_s=0.5, drr_db=0.0)
        >>> rir.size, float(rir[0]), round(float(np.sum(rir[1:] ** 2)), 6)
        (8000, 1.0, 1.0)
    """
    length = int(round(rt60_s * rate))
    t = np.arange(1, length) / rate
    tail = rng.standard_normal(length - 1) * np.exp(-3 * math.log(10) * t / rt60_s)
    tail *= math.sqrt(10 ** (-drr_db / 10) / float(np.sum(tail * tail)))
    return np.concatenate([[1.0], tail])


def reverberate(x: np.ndarray, rng: np.random.Generator, *, rt60_s: float,
                drr_db: float) -> np.ndarray:
    """Convolve with :func:`synthetic_rir` (FFT), keep the first ``len(x)`` samples and
    the clip's RMS level."""
    rir = synthetic_rir(rng, rt60_s=rt60_s, drr_db=drr_db)
    size = 1 << (x.size + rir.size - 2).bit_length()
    out = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(rir, size), size)[:x.size]
    return _keep_level(out, x)


def tilt(x: np.ndarray, rng: np.random.Generator, *, db_per_octave: float, pivot_hz: float,
         floor_hz: float) -> np.ndarray:
    """Gain ``db_per_octave · log2(f / pivot_hz)`` dB at each frequency (zero-phase, on the
    whole clip's spectrum), held constant below ``floor_hz``; then the clip's RMS level."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    octaves = np.log2(np.maximum(freqs, floor_hz) / pivot_hz)
    out = np.fft.irfft(spectrum * 10 ** (db_per_octave * octaves / 20), x.size)
    return _keep_level(out, x)


def _entries() -> list[Perturbation]:
    low, high = TELEPHONE_BAND_HZ
    noise = [Perturbation(f"noise_snr{snr}db", f"white Gaussian noise at {snr} dB SNR",
                          {"snr_db": float(snr)}, add_noise, seeded=True)
             for snr in (20, 10, 5)]
    return [*noise, Perturbation(
        "telephone", f"telephone line: {TELEPHONE_RATE // 1000} kHz, {low:.0f}-{high:.0f} Hz "
        "band-pass, back to 16 kHz",
        {"low_hz": low, "high_hz": high, "rate": TELEPHONE_RATE, "taps": TELEPHONE_TAPS},
        telephone,
    ), Perturbation(
        "gain_minus20db", "20 dB quieter (x0.1)", {"gain_db": -20.0}, gain,
    ), Perturbation(
        "gain_plus6db_clipped", "6 dB louder, clipped at ±1", {"gain_db": 6.0, "clip": 1.0},
        gain,
    ), Perturbation(
        "room_rt60_500ms", "synthetic room: RT60 0.5 s, direct-to-reverberant 0 dB, level kept",
        {"rt60_s": 0.5, "drr_db": 0.0}, reverberate, seeded=True,
    ), Perturbation(
        "tilt_minus3db_per_oct", "spectral tilt -3 dB/octave around 1 kHz, level kept",
        {"db_per_octave": -3.0, "pivot_hz": 1000.0, "floor_hz": 50.0}, tilt,
    )]


#: Every perturbation by name, in the order reports list them.
PERTURBATIONS: dict[str, Perturbation] = {p.name: p for p in _entries()}


def perturb(signal: np.ndarray, name: str, *, seed: Seed = 0) -> np.ndarray:
    """Apply the perturbation ``name`` of :data:`PERTURBATIONS` to a 16 kHz mono signal.

    Args:
        signal: 1-D samples at 16 kHz (any float dtype).
        name: A key of :data:`PERTURBATIONS`.
        seed: Seed of ``np.random.default_rng`` (an int or a sequence of ints) for the
            seeded perturbations.

    Returns:
        float32 samples, the same length as ``signal``.

    Raises:
        PerturbationError: Unknown name, a signal that is not 1-D, or non-finite samples.

    Examples:
        >>> import numpy as np
        >>> [round(v, 4) for v in perturb(np.array([0.25, -0.75, 0.0]),
        ...                                 "gain_plus6db_clipped").tolist()]
        [0.4988, -1.0, 0.0]
    """
    try:
        entry = PERTURBATIONS[name]
    except KeyError:
        raise PerturbationError(f"unknown perturbation {name!r}; choose one of "
                                f"{', '.join(PERTURBATIONS)}") from None
    return entry(signal, seed=seed)
