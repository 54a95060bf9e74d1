"""What shapes a run: :class:`Hyperparams`, :class:`Runtime` and the input error.

The per-family defaults (the learning rate when ``lr`` is not set) are declared with the
students, in :mod:`ser_pipeline.students.families`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ser_pipeline.splits import DEFAULT_DEV_FRACTION

DEFAULT_EPOCHS = 30


class TrainInputError(ValueError):
    """Bad training input found before any training starts; the message says the fix."""


@dataclass
class Hyperparams:
    """Everything that shapes a run (recorded in ``run.json``; a resume reuses it)."""

    crop_s: float = 2.0
    batch_size: int = 16
    #: AdamW learning rate; None: the student family's (``family_of(student).learning_rate``).
    lr: float | None = None
    weight_decay: float = 0.01
    ccc_weight: float = 1.0
    mixup: bool = False
    mixup_alpha: float = 0.4
    gain_db: float = 6.0
    noise_prob: float = 0.0
    noise_dbfs: tuple[float, float] = (-70.0, -35.0)
    epochs: int | None = None
    max_steps: int | None = None
    eval_every: int | None = None
    patience: int = 5
    warmup_steps: int | None = None
    dev_fraction: float = DEFAULT_DEV_FRACTION
    eval_max_s: float = 8.0
    max_dev_clips: int = 500
    num_threads: int = 1
    cache_limit_s: float = 3600.0
    shuffle_clips: int = 2048
    corpora: list[str] | None = None
    ema_decay: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["noise_dbfs"] = list(self.noise_dbfs)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hyperparams:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if "noise_dbfs" in values:
            values["noise_dbfs"] = tuple(values["noise_dbfs"])
        return cls(**values)


@dataclass
class Runtime:
    """Where and how a run computes. None of it changes the batches, so a resume may differ.

    Attributes:
        device: ``cpu``, ``auto`` (CUDA when visible), ``cuda`` or ``cuda:N``.
        workers: Data worker processes (0: batches are built in the training process).
        compile: ``torch.compile`` the training forward pass.
    """

    device: str = "cpu"
    workers: int = 0
    compile: bool = False

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise TrainInputError(f"--workers {self.workers}: use 0 (in-process) or more")

