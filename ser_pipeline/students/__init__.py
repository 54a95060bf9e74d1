"""Student models, keyed by name.

Every student maps a raw 16 kHz waveform batch ``float32 [batch, samples]`` to
``[batch, 3]`` (arousal, dominance, valence). The front end (normalisation, conv DFT,
mel, log) lives inside the model, so each one exports to ONNX alone, and the time axis is
dynamic: any length of at least 1,024 samples (64 ms) works.

Each row of a batch is one utterance (it is normalised on its own). Rows must share a
length: :func:`collate` crops or pads a list of signals to one. Zero padding adds silence
that the model sees, so predictions that must not depend on batch-mates run clips one at a
time (or in batches of equal length).

A built model carries ``model.name`` and ``model.options`` (JSON-able); ``build_student(
model.name, **model.options)`` rebuilds it.

Examples:
    >>> model = build_student("wav2small")
    >>> (model.name, count_parameters(model))
    ('wav2small', 10897)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ser_pipeline.students.frontend import LogMelFrontEnd
from ser_pipeline.students.mobilenet import ARCHITECTURES, MobileNetStudent
from ser_pipeline.students.wav2small import (
    PAPER_72K_CHANNELS,
    PUBLIC_CHANNELS,
    Wav2Small,
    wav2small_params,
    width_for_budget,
)

#: Shortest input (samples) every student accepts.
MIN_SAMPLES = 1024


def _wav2small(**options: Any) -> nn.Module:
    return Wav2Small(**{"channels": PUBLIC_CHANNELS, **options})


def _wav2small_72k(**options: Any) -> nn.Module:
    return Wav2Small(**{"channels": PAPER_72K_CHANNELS, **options})


def _mobilenet(arch: str) -> Callable[..., nn.Module]:
    def build(**options: Any) -> nn.Module:
        return MobileNetStudent(arch=arch, **options)

    build.__name__ = f"_{arch}"
    return build


#: Name -> constructor taking keyword options.
STUDENTS: dict[str, Callable[..., nn.Module]] = {
    "wav2small": _wav2small,
    "wav2small-72k": _wav2small_72k,
    **{name: _mobilenet(arch) for name, arch in ARCHITECTURES.items()},
}


def check_student(name: str) -> str:
    """Return ``name`` if it is a known student, else raise ``ValueError`` naming them."""
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; known students: {', '.join(STUDENTS)}")
    return name


def build_student(name: str, **options: Any) -> nn.Module:
    """Build a fresh (randomly initialised) student by name.

    Args:
        name: One of :data:`STUDENTS`.
        **options: Constructor options (e.g. ``channels=20`` for Wav2Small, ``n_mels=`` for
            the MobileNets). Recorded as ``model.options`` so the model can be rebuilt.

    Raises:
        ValueError: Unknown name (the message lists the known ones) or bad option.
    """
    check_student(name)
    try:
        model = STUDENTS[name](**options)
    except TypeError as error:
        raise ValueError(f"bad option for student {name!r}: {error}") from None
    model.name = name
    model.options = dict(options)
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of parameters (only ``requires_grad`` ones by default).

    Buffers (the frozen DFT/mel matrices, BatchNorm running statistics) never count.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def collate(signals: Sequence[np.ndarray | torch.Tensor], *, mode: str = "pad",
            length: int | None = None) -> torch.Tensor:
    """Stack 1-D signals of different lengths into a ``float32 [batch, samples]`` tensor.

    Args:
        signals: 1-D waveforms (16 kHz).
        mode: ``"pad"`` zero-pads to the longest (or ``length``); ``"crop"`` keeps the first
            samples of each, up to the shortest (or ``length``), zero-padding any shorter one.
        length: Target length; default the longest (pad) or shortest (crop) signal.
    """
    tensors = [torch.as_tensor(np.asarray(s, dtype=np.float32)).reshape(-1) for s in signals]
    if not tensors:
        raise ValueError("collate needs at least one signal")
    if mode not in ("pad", "crop"):
        raise ValueError(f"mode must be 'pad' or 'crop', got {mode!r}")
    sizes = [t.numel() for t in tensors]
    target = length or (max(sizes) if mode == "pad" else min(sizes))
    target = max(target, MIN_SAMPLES)
    batch = torch.zeros(len(tensors), target)
    for row, tensor in enumerate(tensors):
        keep = min(target, tensor.numel())
        batch[row, :keep] = tensor[:keep]
    return batch


__all__ = [
    "MIN_SAMPLES",
    "STUDENTS",
    "LogMelFrontEnd",
    "MobileNetStudent",
    "Wav2Small",
    "build_student",
    "check_student",
    "collate",
    "count_parameters",
    "wav2small_params",
    "width_for_budget",
]
