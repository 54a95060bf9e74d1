"""Crops and augmentation: the batch of a step is a pure function of ``(seed, step)``."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from ser_pipeline.schemas import SAMPLE_RATE
from ser_pipeline.train.hparams import Hyperparams
from ser_pipeline.train.source import ClipSource


def crop(signal: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    if signal.size >= length:
        start = int(rng.integers(0, signal.size - length + 1))
        return signal[start:start + length]
    # Shorter clips are repeated rather than zero-padded: padding would be silence that
    # the per-utterance normalisation and attention pooling would then learn from.
    return np.tile(signal, math.ceil(length / max(signal.size, 1)))[:length]


def make_batch(source: ClipSource, ids: list[str], targets: Mapping[str, tuple], *,
               hp: Hyperparams, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented batch of one step: a pure function of ``(seed, step)`` and the ids."""
    rng = np.random.default_rng([seed, step, 2])
    length = int(round(hp.crop_s * SAMPLE_RATE))
    x = np.stack([crop(source.get(i), length, rng) for i in ids]).astype(np.float32)
    gains = 10 ** (rng.uniform(-hp.gain_db, hp.gain_db, size=(len(ids), 1)) / 20)
    x = x * gains
    # Gain alone is undone by the per-utterance normalisation; with noise at a fixed level
    # it varies the signal-to-noise ratio. Off by default: the target is what the teacher
    # said about the clean clip, and a teacher that is not noise-invariant would say
    # something else about the noisy one (measured: dev CCC vs teacher +0.025 without it).
    if hp.noise_prob:
        noisy = rng.random(len(ids)) < hp.noise_prob
        levels = 10 ** (rng.uniform(*hp.noise_dbfs, size=len(ids)) / 20)
        x = x + (noisy * levels)[:, None] * rng.standard_normal(x.shape)
    y = np.array([targets[i] for i in ids], dtype=np.float32)
    if hp.mixup:
        lam = float(rng.beta(hp.mixup_alpha, hp.mixup_alpha))
        perm = rng.permutation(len(ids))
        x = lam * x + (1 - lam) * x[perm]
        y = lam * y + (1 - lam) * y[perm]
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
