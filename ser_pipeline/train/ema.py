"""Exponential moving average (EMA) of a student's weights.

The averaged copy is what a run evaluates, checkpoints and therefore exports: averaging
the last few hundred steps smooths the noise of small-batch updates, which is what held dev
CCC back when it wandered from evaluation to evaluation. The live weights keep training; the
resume state stores them next to the optimiser moments, so a resumed run continues exactly.

BatchNorm running statistics are buffers, not parameters: they are copied from the live
model rather than averaged (they already are running averages).
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """An EMA copy of ``model`` with a warm-up: decay ``min(decay, (1 + t) / (10 + t))``.

    The warm-up keeps early averages from being dominated by the random initialisation, so
    the average is usable from the first evaluation on.

    Args:
        model: The live model (not modified).
        decay: Weight of the old average per step, in [0, 1); 0 turns averaging off (the
            average is then the live model itself).

    Examples:
        >>> live = torch.nn.Linear(2, 1)
        >>> ema = WeightAverage(live, decay=0.9)
        >>> with torch.no_grad():
        ...     _ = live.weight.add_(1.0)
        >>> ema.update(step=100)
        >>> bool((ema.module.weight < live.weight).all())
        True
    """

    def __init__(self, model: torch.nn.Module, *, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay, self.live = decay, model
        self.module = copy.deepcopy(model) if decay else model
        for parameter in self.module.parameters() if decay else ():
            parameter.requires_grad_(False)

    @property
    def enabled(self) -> bool:
        return bool(self.decay)

    @torch.no_grad()
    def update(self, *, step: int) -> None:
        """Fold the live weights of optimiser step ``step`` (0-based) into the average."""
        if not self.decay:
            return
        decay = min(self.decay, (1 + step) / (10 + step))
        for average, live in zip(self.module.parameters(), self.live.parameters(), strict=True):
            average.lerp_(live.detach(), 1.0 - decay)
        for average, live in zip(self.module.buffers(), self.live.buffers(), strict=True):
            average.copy_(live)

    def live_tensors(self) -> dict[str, torch.Tensor]:
        """The live weights as ``live.<name>`` tensors (CPU), for the resume state."""
        if not self.decay:
            return {}
        return {f"live.{k}": v.detach().cpu().clone() for k, v in self.live.state_dict().items()}

    def restore_live(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load the live weights saved by :meth:`live_tensors` (no-op when averaging is off)."""
        if not self.decay:
            return
        live = {k[len("live."):]: v for k, v in tensors.items() if k.startswith("live.")}
        if not live:
            raise ValueError("the resume state holds no live weights for this EMA run")
        self.live.load_state_dict(live)
