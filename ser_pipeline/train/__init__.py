"""Distillation training: students learn the teacher's A/D/V from raw audio.

The package reads in the order a run does:

- :mod:`.hparams`: :class:`Hyperparams`, :class:`TrainInputError` (per-family defaults are
  declared with the students, :mod:`ser_pipeline.students.families`);
- :mod:`.targets`: one teacher's targets, the stored split and durations, all checked before
  any training starts (:func:`prepare_data`);
- the data path: :mod:`.source` (Parquet row groups, cached or streamed, block shuffle) and
  :mod:`.augment` (crops, gain, noise, mixup; a pure function of ``(seed, step)``);
- :mod:`.loss` (MSE + ``1 - CCC``) and :mod:`.dev` (the early-stopping dev set);
- :mod:`.loop`: optimiser, schedule, evaluation and stopping rules of one run;
- :mod:`.state`: ``run.json``, checkpoints and exact resume (safetensors + JSON, no pickle);
- :mod:`.api`: :func:`train_one` and :func:`train_students`.

The model definitions live apart, in :mod:`ser_pipeline.students`.
"""

from ser_pipeline.train.api import train_one, train_students
from ser_pipeline.train.augment import crop, make_batch
from ser_pipeline.train.dev import centre, dev_subset, predict_signals
from ser_pipeline.train.hparams import (
    DEFAULT_EPOCHS,
    Hyperparams,
    TrainInputError,
)
from ser_pipeline.train.loop import Determinism, lr_at
from ser_pipeline.train.loss import ccc_report, ccc_torch, distillation_loss
from ser_pipeline.train.source import ClipSource
from ser_pipeline.train.state import RunState, git_sha
from ser_pipeline.train.targets import TrainData, prepare_data, teacher_ids

__all__ = [
    "DEFAULT_EPOCHS", "ClipSource", "Determinism", "Hyperparams", "RunState",
    "TrainData", "TrainInputError", "ccc_report", "ccc_torch", "centre", "crop",
    "dev_subset", "distillation_loss", "git_sha", "lr_at", "make_batch", "predict_signals",
    "prepare_data", "teacher_ids", "train_one", "train_students",
]
