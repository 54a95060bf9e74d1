"""Student models, keyed by name.

Every student maps a raw 16 kHz waveform batch ``float32 [batch, samples]`` to
``[batch, 3]`` (arousal, dominance, valence). The front end (normalisation, conv DFT,
mel, log) lives inside the model, so each one exports to ONNX alone, and the time axis is
dynamic: any length of at least 1,024 samples (64 ms) works.

Each row of a batch is one utterance (it is normalised on its own). Rows must share a
length: :func:`collate` crops or pads a list of signals to one. Zero padding adds silence
that the model sees, so predictions that must not depend on batch-mates run clips one at a
time (or in batches of equal length).

Which students exist, their families and each family's defaults (learning rate, the
paper's targets) are in the catalog, :mod:`.families`; the model definitions are
:mod:`.wav2small` and :mod:`.mobilenet`. Importing this package does not import torch
(building a model does).

A built model carries ``model.name`` and ``model.options`` (JSON-able); ``build_student(
model.name, **model.options)`` rebuilds it.

Examples:
    >>> model = build_student("wav2small")
    >>> (model.name, count_parameters(model))
    ('wav2small', 10897)
    >>> build_student("wav2small-72k").channels
    34
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ser_pipeline.students.families import (
    FAMILIES,
    STUDENTS,
    PaperTargets,
    Student,
    StudentFamily,
    check_student,
    family_of,
    student_spec,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Shortest input (samples) every student accepts.
MIN_SAMPLES = 1024


def build_student(name: str, **options: Any) -> nn.Module:
    """Build a fresh (randomly initialised) student by name.

    Args:
        name: One of :data:`STUDENTS`.
        **options: Constructor options (e.g. ``channels=20`` for Wav2Small, ``n_mels=`` for
            the MobileNets); they override the student's catalog defaults and are recorded
            as ``model.options`` so the model can be rebuilt.

    Raises:
        ValueError: Unknown name (the message lists the known ones) or bad option.
    """
    spec = student_spec(name)
    try:
        model = spec.family.build(**{**spec.defaults, **options})
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

    Examples:
        >>> collate([np.ones(2000), np.ones(3000)]).shape
        torch.Size([2, 3000])
        >>> collate([np.ones(2000), np.ones(3000)], mode="crop").shape
        torch.Size([2, 2000])
    """
    import torch

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
    "FAMILIES",
    "MIN_SAMPLES",
    "STUDENTS",
    "PaperTargets",
    "Student",
    "StudentFamily",
    "build_student",
    "check_student",
    "collate",
    "count_parameters",
    "family_of",
    "student_spec",
]
