"""The dev set used for early stopping: a hashed subset, centre cuts, clip-by-clip predict."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.students import MIN_SAMPLES


def dev_subset(ids: list[str], limit: int) -> list[str]:
    """At most ``limit`` dev clips, chosen by hash so every run of a split picks the same."""
    ranked = sorted(ids, key=lambda i: sha256_bytes(f"dev/{i}".encode()))
    return sorted(ranked[:limit])


def centre(signal: np.ndarray, max_samples: int) -> np.ndarray:
    """The central ``max_samples`` of a signal (all of it when shorter)."""
    if signal.size <= max_samples:
        return signal
    start = (signal.size - max_samples) // 2
    return signal[start:start + max_samples]


@torch.no_grad()
def predict_signals(model: torch.nn.Module, signals: Iterable[np.ndarray]) -> np.ndarray:
    """Predict clip by clip (each at its own length), in eval mode, on the model's device."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs = []
    for signal in signals:
        x = torch.from_numpy(np.asarray(signal, dtype=np.float32))
        if x.numel() < MIN_SAMPLES:
            x = torch.from_numpy(np.tile(signal, math.ceil(MIN_SAMPLES / max(x.numel(), 1)))
                                 [:MIN_SAMPLES].astype(np.float32))
        outputs.append(model(x[None].to(device))[0].float().cpu().numpy())
    model.train(was_training)
    return np.stack(outputs).astype(np.float64)
