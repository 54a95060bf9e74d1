"""The log-mel front end every student computes inside itself (raw 16 kHz waveform in).

The spectrogram is a frozen ``Conv1d``-style DFT (real and imaginary kernels, Hann
windowed), not ``torch.stft``: ``torch.stft(return_complex=True)`` exports to ONNX only
through dynamo, while a strided convolution exports everywhere and runs fast in ONNX
Runtime. The DFT kernels and the mel matrix are non-persistent buffers: they are a pure
function of the configuration, so they are neither trainable parameters nor part of a
checkpoint, and an exported graph carries them as constants.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ser_pipeline.schemas import SAMPLE_RATE


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    log_region = hz >= min_log_hz
    mels = np.where(log_region, min_log_mel + np.log(np.maximum(hz, 1e-9) / min_log_hz) / logstep,
                    mels)
    return mels


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)),
                    f_sp * mels)


def mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> np.ndarray:
    """Triangular, Slaney-normalised mel filters ``[n_mels, n_fft // 2 + 1]``.

    The same construction as ``librosa.filters.mel`` (its defaults), written out here so
    the package does not depend on librosa.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    weights = np.zeros((n_mels, bins.size))
    for i in range(n_mels):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))[:, None]
    return weights.astype(np.float32)


def dft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed real and imaginary DFT kernels ``[n_fft // 2 + 1, 1, n_fft]``."""
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann, as torch.hann_window / scipy
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    angle = 2 * np.pi * k * n / n_fft
    real = (np.cos(angle) * window)[:, None, :]
    imag = (-np.sin(angle) * window)[:, None, :]
    return real.astype(np.float32), imag.astype(np.float32)


class LogMelFrontEnd(nn.Module):
    """Waveform ``[batch, samples]`` -> log-mel ``[batch, 1, n_mels, frames]`` (dB).

    Steps: per-utterance normalisation (zero mean, unit variance), zero padding of
    ``n_fft // 2`` on both sides (so ``frames = 1 + samples // hop``, and clips shorter
    than one window still work), frozen conv DFT, power, mel filters, ``10 * log10(x + eps)``.

    Args:
        n_fft: DFT size (window length) in samples.
        hop: Hop between frames in samples (32 -> 500 frames per second at 16 kHz).
        n_mels: Number of mel filters.
        f_max: Highest mel edge in Hz (default: Nyquist, 8 kHz).
        eps: Floor added before the logarithm.
        normalize: Per-utterance zero-mean / unit-variance normalisation of the waveform.
    """

    def __init__(self, *, n_fft: int = 64, hop: int = 32, n_mels: int = 26,
                 sample_rate: int = SAMPLE_RATE, f_min: float = 0.0, f_max: float | None = 8000.0,
                 eps: float = 1e-6, normalize: bool = True) -> None:
        super().__init__()
        self.n_fft, self.hop, self.n_mels, self.eps = n_fft, hop, n_mels, eps
        self.sample_rate, self.normalize = sample_rate, normalize
        real, imag = dft_kernels(n_fft)
        # Real and imaginary kernels stacked: one strided conv computes both halves.
        self.register_buffer("dft", torch.from_numpy(np.concatenate([real, imag])),
                             persistent=False)
        mel = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, f_min=f_min,
                             f_max=f_max)
        self.register_buffer("mel", torch.from_numpy(mel), persistent=False)

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = waveform
        if self.normalize:
            x = x - x.mean(dim=1, keepdim=True)
            x = x / torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-7)
        x = F.pad(x.unsqueeze(1), (self.n_fft // 2, self.n_fft // 2))
        spec = F.conv1d(x, self.dft, stride=self.hop)  # [batch, 2 * bins, frames]
        bins = self.n_fft // 2 + 1
        power = spec[:, :bins].pow(2) + spec[:, bins:].pow(2)
        mel = torch.matmul(self.mel, power)  # [batch, n_mels, frames]
        return (10.0 * torch.log10(mel + self.eps)).unsqueeze(1)

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop={self.hop}, n_mels={self.n_mels}, eps={self.eps}"
