"""Distillation training: students learn the teacher's A/D/V from raw audio.

Data. Targets are the ``teacher_labels`` rows of one ``teacher_id`` (human labels are never
read here). The train/dev split comes from :mod:`ser_pipeline.splits` (stored in the lake,
so evaluation uses the same one). Audio comes from the lake's Parquet: when the train
split holds at most ``cache_limit_s`` seconds of audio (default one hour, about 230 MB of
float32) its decoded signals are cached in memory; above that, clips stream from Parquet
row groups, shuffled block-wise (row groups in random order, clips shuffled inside a
window of about ``shuffle_clips`` clips), so memory stays flat on big lakes.

Determinism. Every random draw is a function of ``(seed, step)``: the epoch's clip order
comes from ``rng(seed, epoch)``, the crops, gains, noise and mixup of a step from
``rng(seed, step)``. A resumed run therefore sees exactly the batches the uninterrupted
run would have seen. With ``torch.use_deterministic_algorithms`` and a fixed thread count,
two CPU runs with the same seed give identical weights and metrics.

Checkpoints. At every evaluation (every ``eval_every`` steps, default one epoch with a
floor of 50 steps) the weights go to ``runs/<run_id>/ckpt-<step>.safetensors`` and the
resume state to ``state-<step>.json`` (step, best so far, history, hyper-parameters)
plus ``optim-<step>.safetensors`` (AdamW moments and the torch RNG): no pickle anywhere.
The best checkpoint (highest dev CCC averaged over A/D/V) and the last are kept.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch

from ser_pipeline.audio import decode_flac
from ser_pipeline.lake import Lake, utcnow
from ser_pipeline.progress import progress_bar
from ser_pipeline.runs import (
    RunError,
    load_checkpoint,
    new_run_id,
    read_run_meta,
    run_path,
    save_checkpoint,
    write_run_meta,
)
from ser_pipeline.schemas import LABELS, SAMPLE_RATE, TABLES
from ser_pipeline.splits import DEFAULT_DEV_FRACTION, ensure_splits, split_name_for
from ser_pipeline.students import MIN_SAMPLES, build_student, check_student, count_parameters

#: Default learning rate per student family (AdamW).
DEFAULT_LR = {"wav2small": 3e-3, "mobilenet": 1e-3}
DEFAULT_EPOCHS = 30


class TrainInputError(ValueError):
    """Bad training input found before any training starts; the message says the fix."""


@dataclass
class Hyperparams:
    """Everything that shapes a run (recorded in ``run.json``; a resume reuses it)."""

    crop_s: float = 2.0
    batch_size: int = 16
    lr: float | None = None
    weight_decay: float = 0.01
    ccc_weight: float = 1.0
    mixup: bool = False
    mixup_alpha: float = 0.4
    gain_db: float = 6.0
    noise_prob: float = 0.5
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


# -- metrics and loss -------------------------------------------------------------------
def ccc_torch(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Differentiable CCC per column: ``2 cov / (var_p + var_t + (mean_p - mean_t)^2)``.

    Population statistics (divide by n), the same definition as ``audmetric.concordance_cc``.
    """
    mean_p, mean_t = prediction.mean(0), target.mean(0)
    var_p = (prediction - mean_p).pow(2).mean(0)
    var_t = (target - mean_t).pow(2).mean(0)
    cov = ((prediction - mean_p) * (target - mean_t)).mean(0)
    return 2 * cov / (var_p + var_t + (mean_p - mean_t).pow(2) + 1e-8)


def distillation_loss(prediction: torch.Tensor, target: torch.Tensor, *,
                      ccc_weight: float) -> torch.Tensor:
    """MSE plus ``ccc_weight * (1 - mean CCC over A/D/V)``."""
    loss = torch.nn.functional.mse_loss(prediction, target)
    if ccc_weight:
        loss = loss + ccc_weight * (1 - ccc_torch(prediction, target).mean())
    return loss


def ccc_report(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """audmetric CCC per dimension and their mean (the reported metric)."""
    import audmetric

    result = {label: float(audmetric.concordance_cc(truth[:, i], prediction[:, i]))
              for i, label in enumerate(LABELS)}
    result = {k: (0.0 if math.isnan(v) else v) for k, v in result.items()}
    result["mean"] = float(np.mean([result[label] for label in LABELS]))
    return result


# -- data -------------------------------------------------------------------------------
@dataclass
class TrainData:
    """What a run trains on: ids, targets, and the lake snapshot they came from."""

    teacher_id: str
    teacher_sha256: str | None
    split_name: str
    train_ids: list[str]
    dev_ids: list[str]
    targets: dict[str, tuple[float, float, float]]
    durations: dict[str, float]
    corpora: list[str]
    snapshot: dict[str, list[str]]
    skipped: dict[str, int] = field(default_factory=dict)


def _read_parts(lake: Lake, table: str, parts: list[str], *, columns: list[str],
                filter: ds.Expression | None = None) -> pa.Table:
    if not parts:
        return pa.Table.from_pylist([], schema=TABLES[table]).select(columns)
    dataset = ds.dataset([lake.storage.path(p) for p in parts], schema=TABLES[table],
                         format="parquet", filesystem=lake.storage.fs)
    return dataset.to_table(columns=columns, filter=filter)


def teacher_ids(lake: Lake) -> list[str]:
    """The teacher ids that have labels in the lake."""
    return sorted(lake.ids("teacher_labels", column="teacher_id"))


def prepare_data(lake: Lake, *, teacher_id: str, corpora: Iterable[str] | None = None,
                 dev_fraction: float = DEFAULT_DEV_FRACTION, crop_s: float = 2.0,
                 snapshot: Mapping[str, list[str]] | None = None) -> TrainData:
    """Resolve targets, split and durations, and check them before any training.

    Raises:
        TrainInputError: teacher id without labels, too few clips for the split, or a crop
            longer than every training clip.
    """
    corpora = sorted(set(corpora)) if corpora else None
    split_name = split_name_for(dev_fraction)
    if snapshot is None:
        if not lake.count("teacher_labels", filter=ds.field("teacher_id") == teacher_id):
            known = ", ".join(teacher_ids(lake)) or "none (run 'ser label' first)"
            raise TrainInputError(f"teacher id {teacher_id!r} has no labels in lake {lake.url}; "
                                  f"teacher ids with labels: {known}")
        ensure_splits(lake, corpora=corpora, dev_fraction=dev_fraction)
        snapshot = {table: lake.parts(table) for table in ("audio", "teacher_labels", "splits")}
    labels = _read_parts(
        lake, "teacher_labels", snapshot["teacher_labels"],
        columns=["audio_id", "teacher_sha256", *LABELS, "labeled_at"],
        filter=ds.field("teacher_id") == teacher_id,
    ).sort_by([("labeled_at", "descending"), ("audio_id", "ascending")]).to_pylist()
    targets: dict[str, tuple[float, float, float]] = {}
    shas: dict[str, int] = {}
    non_finite = 0
    for row in labels:  # newest label of a clip wins
        if row["audio_id"] in targets:
            continue
        values = tuple(float(row[label]) for label in LABELS)
        if not all(math.isfinite(v) for v in values):
            non_finite += 1
            continue
        targets[row["audio_id"]] = values
        shas[row["teacher_sha256"]] = shas.get(row["teacher_sha256"], 0) + 1
    audio_filter = ds.field("corpus").isin(corpora) if corpora else None
    audio = _read_parts(lake, "audio", snapshot["audio"],
                        columns=["audio_id", "corpus", "duration_s"], filter=audio_filter)
    durations, corpus_of = {}, {}
    for audio_id, corpus, duration in zip(audio.column("audio_id").to_pylist(),
                                          audio.column("corpus").to_pylist(),
                                          audio.column("duration_s").to_pylist(), strict=True):
        durations.setdefault(audio_id, float(duration))
        corpus_of.setdefault(audio_id, corpus)
    splits_table = _read_parts(lake, "splits", snapshot["splits"], columns=["audio_id", "split"],
                               filter=ds.field("split_name") == split_name)
    split_of: dict[str, str] = {}
    for audio_id, split in zip(splits_table.column("audio_id").to_pylist(),
                               splits_table.column("split").to_pylist(), strict=True):
        split_of.setdefault(audio_id, split)
    train_ids = sorted(i for i in targets if i in durations and split_of.get(i) == "train")
    dev_ids = sorted(i for i in targets if i in durations and split_of.get(i) == "dev")
    skipped = {"labels_without_audio": sum(1 for i in targets if i not in durations),
               "non_finite_labels": non_finite,
               "other_splits": sum(1 for i in targets if i in durations
                                   and split_of.get(i) not in ("train", "dev"))}
    if len(train_ids) < 2 or len(dev_ids) < 2:
        raise TrainInputError(
            f"too few clips for the split {split_name!r}: {len(train_ids)} train and "
            f"{len(dev_ids)} dev clips carry labels of teacher {teacher_id!r} (need at least 2 "
            "each); label more audio with 'ser label' or ingest more clips/speakers"
        )
    longest = max(durations[i] for i in train_ids)
    if crop_s * SAMPLE_RATE > longest * SAMPLE_RATE + 1:
        raise TrainInputError(
            f"crop length {crop_s:g} s is longer than every training clip (longest "
            f"{longest:.2f} s); pass a shorter crop, e.g. --crop-s {max(0.1, longest):.1f}"
        )
    if crop_s * SAMPLE_RATE < MIN_SAMPLES:
        raise TrainInputError(f"crop length {crop_s:g} s is shorter than the students' minimum "
                              f"input of {MIN_SAMPLES / SAMPLE_RATE:.3f} s")
    teacher_sha = max(shas, key=shas.get) if shas else None
    used_corpora = sorted({corpus_of[i] for i in train_ids + dev_ids})
    return TrainData(teacher_id=teacher_id, teacher_sha256=teacher_sha, split_name=split_name,
                     train_ids=train_ids, dev_ids=dev_ids, targets=targets,
                     durations=durations, corpora=used_corpora, snapshot=dict(snapshot),
                     skipped=skipped)


class ClipSource:
    """Decoded signals of a set of clips, cached whole or streamed by Parquet row group."""

    def __init__(self, lake: Lake, parts: list[str], ids: Iterable[str], *, cache: bool,
                 shuffle_clips: int = 2048) -> None:
        self.lake, self.cache, self.shuffle_clips = lake, cache, shuffle_clips
        wanted = set(ids)
        self.block_of: dict[str, tuple[str, int]] = {}
        self.blocks: dict[tuple[str, int], list[str]] = {}
        for part in parts:
            with lake.storage.open(part) as handle:
                reader = pq.ParquetFile(handle)
                for group in range(reader.num_row_groups):
                    column = reader.read_row_group(group, columns=["audio_id"]).column(0)
                    members = [i for i in column.to_pylist()
                               if i in wanted and i not in self.block_of]
                    for audio_id in members:
                        self.block_of[audio_id] = (part, group)
                    if members:
                        self.blocks[(part, group)] = members
        self.loaded: OrderedDict[tuple[str, int], dict[str, np.ndarray]] = OrderedDict()
        self.max_loaded_clips = 2 * shuffle_clips
        if cache:
            for block in self.blocks:
                self._load(block)

    def _load(self, block: tuple[str, int]) -> dict[str, np.ndarray]:
        if block in self.loaded:
            self.loaded.move_to_end(block)
            return self.loaded[block]
        part, group = block
        members = set(self.blocks[block])
        with self.lake.storage.open(part) as handle:
            table = pq.ParquetFile(handle).read_row_group(group, columns=["audio_id", "audio"])
        signals = {}
        for audio_id, audio in zip(table.column("audio_id").to_pylist(),
                                   table.column("audio").to_pylist(), strict=True):
            if audio_id in members and audio_id not in signals:
                signals[audio_id] = decode_flac(audio["bytes"])
        self.loaded[block] = signals
        if not self.cache:
            while (sum(len(v) for v in self.loaded.values()) > self.max_loaded_clips
                   and len(self.loaded) > 1):
                self.loaded.popitem(last=False)
        return signals

    def get(self, audio_id: str) -> np.ndarray:
        return self._load(self.block_of[audio_id])[audio_id]

    def epoch_order(self, seed: int, epoch: int) -> list[str]:
        """The clip order of an epoch: a pure function of ``(seed, epoch)``."""
        rng = np.random.default_rng([seed, epoch, 1])
        blocks = sorted(self.blocks)
        if self.cache:
            ids = sorted(self.block_of)
            return [ids[i] for i in rng.permutation(len(ids))]
        order: list[str] = []
        window: list[str] = []
        for index in rng.permutation(len(blocks)):
            window.extend(self.blocks[blocks[index]])
            if len(window) >= self.shuffle_clips:
                order.extend(window[i] for i in rng.permutation(len(window)))
                window = []
        order.extend(window[i] for i in rng.permutation(len(window)))
        return order


def _crop(signal: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
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
    x = np.stack([_crop(source.get(i), length, rng) for i in ids]).astype(np.float32)
    gains = 10 ** (rng.uniform(-hp.gain_db, hp.gain_db, size=(len(ids), 1)) / 20)
    x = x * gains
    # Gain alone is undone by the per-utterance normalisation; with noise at a fixed level
    # it varies the signal-to-noise ratio, which is what the student must be robust to.
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


def _dev_subset(ids: list[str], limit: int) -> list[str]:
    import hashlib

    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"dev/{i}".encode()).hexdigest())
    return sorted(ranked[:limit])


def _centre(signal: np.ndarray, max_samples: int) -> np.ndarray:
    if signal.size <= max_samples:
        return signal
    start = (signal.size - max_samples) // 2
    return signal[start:start + max_samples]


@torch.no_grad()
def predict_signals(model: torch.nn.Module, signals: Iterable[np.ndarray]) -> np.ndarray:
    """Predict clip by clip (each at its own length), in eval mode; ``[n, 3]``."""
    was_training = model.training
    model.eval()
    outputs = []
    for signal in signals:
        x = torch.from_numpy(np.asarray(signal, dtype=np.float32))
        if x.numel() < MIN_SAMPLES:
            x = torch.from_numpy(np.tile(signal, math.ceil(MIN_SAMPLES / max(x.numel(), 1)))
                                 [:MIN_SAMPLES].astype(np.float32))
        outputs.append(model(x[None])[0].numpy())
    model.train(was_training)
    return np.stack(outputs).astype(np.float64)


# -- helpers ----------------------------------------------------------------------------
def git_sha() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _default_lr(student: str) -> float:
    return DEFAULT_LR["wav2small" if student.startswith("wav2small") else "mobilenet"]


def _lr_at(step: int, *, base: float, total: int, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    state = optimizer.state_dict()
    tensors = {f"state.{index}.{key}": torch.as_tensor(value).clone()
               for index, values in state["state"].items() for key, value in values.items()}
    return tensors, state["param_groups"]


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


class _Determinism:
    """Fixed threads and deterministic kernels for the run; restores the previous values."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __enter__(self) -> None:
        self.saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(True, warn_only=True)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.saved[0])
        torch.use_deterministic_algorithms(self.saved[1])


# -- one run ----------------------------------------------------------------------------
def train_one(
    lake: Lake | str,
    *,
    student: str | None = None,
    teacher_id: str | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    seed: int = 0,
    hyperparams: Hyperparams | Mapping[str, Any] | None = None,
    student_options: Mapping[str, Any] | None = None,
    time_budget_s: float | None = None,
    stop_at_step: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) one student against one teacher's labels.

    Args:
        lake: The lake (or its URL, so Prefect/Dask tasks pass a reference).
        student: Student name (ignored on resume: the run's own is used).
        teacher_id: Teacher whose labels are the targets (ignored on resume).
        run_id: Id for a new run (default: a fresh one).
        resume: Id of a run to continue from its last saved state.
        seed: Seed for initialisation, data order, crops and augmentation.
        hyperparams: :class:`Hyperparams` or a dict of its fields.
        student_options: Constructor options for the student.
        time_budget_s: Stop (status ``stopped_budget``, resumable) after this much wall time.
        stop_at_step: Stop after this step with a resumable state (status ``interrupted``);
            simulates an interruption, used by tests and by schedulers with step quotas.

    Returns:
        The run record ``{run_id, student, params, best_dev_ccc, initial_dev_ccc, steps,
        status, ...}``.
    """
    lake = Lake.open(lake) if isinstance(lake, str) else lake
    state: dict[str, Any] | None = None
    if resume:
        meta = read_run_meta(lake, resume)
        if not meta.get("resume_state"):
            raise RunError(f"run {resume!r} has no saved state to resume from; start a new run")
        state = json.loads(lake.storage.read_bytes(meta["resume_state"]))
        student, teacher_id, seed = meta["student"], meta["teacher_id"], meta["seed"]
        student_options = meta.get("student_options") or {}
        hp = Hyperparams.from_dict(meta["hyperparams"])
        run_id = resume
        data = prepare_data(lake, teacher_id=teacher_id, corpora=hp.corpora,
                            dev_fraction=hp.dev_fraction, crop_s=hp.crop_s,
                            snapshot=meta["lake_snapshot"])
    else:
        if not student or not teacher_id:
            raise TrainInputError("train_one needs a student and a teacher_id (or resume=)")
        check_student(student)
        hp = (hyperparams if isinstance(hyperparams, Hyperparams)
              else Hyperparams.from_dict(hyperparams or {}))
        data = prepare_data(lake, teacher_id=teacher_id, corpora=hp.corpora,
                            dev_fraction=hp.dev_fraction, crop_s=hp.crop_s)
        run_id = run_id or new_run_id(student)
        student_options = dict(student_options or {})
    with _Determinism(hp.num_threads):
        return _run(lake, run_id=run_id, student=student, data=data, hp=hp, seed=seed,
                    student_options=dict(student_options), state=state,
                    time_budget_s=time_budget_s, stop_at_step=stop_at_step)


def _run(lake: Lake, *, run_id: str, student: str, data: TrainData, hp: Hyperparams, seed: int,
         student_options: dict, state: dict | None, time_budget_s: float | None,
         stop_at_step: int | None) -> dict[str, Any]:
    started = time.monotonic()
    torch.manual_seed(seed)
    model = build_student(student, **student_options)
    params = count_parameters(model)
    batch_size = min(hp.batch_size, len(data.train_ids))
    steps_per_epoch = max(1, len(data.train_ids) // batch_size)
    if hp.max_steps:
        total = hp.max_steps if hp.epochs is None else min(hp.max_steps,
                                                           hp.epochs * steps_per_epoch)
    else:
        total = (hp.epochs or DEFAULT_EPOCHS) * steps_per_epoch
    eval_every = hp.eval_every or max(steps_per_epoch, 50)
    warmup = hp.warmup_steps if hp.warmup_steps is not None else min(100, total // 10)
    lr = hp.lr or _default_lr(student)
    train_seconds = sum(data.durations[i] for i in data.train_ids)
    cache = train_seconds <= hp.cache_limit_s
    train_source = ClipSource(lake, data.snapshot["audio"], data.train_ids, cache=cache,
                              shuffle_clips=hp.shuffle_clips)
    dev_ids = _dev_subset(data.dev_ids, hp.max_dev_clips)
    dev_source = ClipSource(lake, data.snapshot["audio"], dev_ids, cache=True)
    max_eval = int(hp.eval_max_s * SAMPLE_RATE)
    dev_signals = [_centre(dev_source.get(i), max_eval) for i in dev_ids]
    dev_truth = np.array([data.targets[i] for i in dev_ids], dtype=np.float64)
    del dev_source

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=hp.weight_decay)
    meta: dict[str, Any] = {
        "run_id": run_id, "student": student, "student_options": student_options,
        "teacher_id": data.teacher_id, "teacher_sha256": data.teacher_sha256,
        "lake_snapshot": data.snapshot, "seed": seed, "git_sha": git_sha(),
        "hyperparams": {**hp.to_dict(), "lr": lr, "batch_size": batch_size,
                        "total_steps": total, "steps_per_epoch": steps_per_epoch,
                        "eval_every": eval_every, "warmup_steps": warmup,
                        "cache_audio": cache},
        "params": params, "corpora": data.corpora, "split_name": data.split_name,
        "train_clips": len(data.train_ids), "dev_clips": len(dev_ids),
        "train_audio_s": round(train_seconds, 2), "skipped": data.skipped,
        "best_checkpoint": None, "last_checkpoint": None, "best_step": None,
        "best_dev_ccc": None, "initial_dev_ccc": None, "history": [], "status": "running",
        "resume_state": None, "created_at": utcnow().isoformat(),
    }
    step = 0
    if state is not None:
        previous = read_run_meta(lake, run_id)
        # resume_state and steps too: run.json is rewritten below, and a crash before the
        # next checkpoint must still find the state this resume started from.
        meta.update({k: previous[k] for k in ("best_checkpoint", "last_checkpoint", "best_step",
                                              "best_dev_ccc", "initial_dev_ccc", "history",
                                              "created_at", "git_sha", "resume_state", "steps")
                     if k in previous})
        meta["resumed_at"] = [*previous.get("resumed_at", []), utcnow().isoformat()]
        meta["resumed_git_sha"] = git_sha()
        model.load_state_dict(load_checkpoint(lake, meta["last_checkpoint"]))
        tensors = load_checkpoint(lake, state["optimizer"])
        _restore_optimizer(optimizer, tensors, state["param_groups"])
        torch.set_rng_state(tensors["torch_rng"])
        step = state["step"]
    evals_since_best = state["evals_since_best"] if state else 0
    write_run_meta(lake, run_id, meta)

    def evaluate() -> dict[str, float]:
        return ccc_report(dev_truth, predict_signals(model, dev_signals))

    def checkpoint(at: int, dev: dict[str, float], status: str) -> None:
        nonlocal evals_since_best
        # Crash safety: write every new file, then point run.json at them, and only then
        # delete what the old run.json pointed at. A kill at any moment leaves run.json
        # naming files that exist, so --resume always works.
        path = save_checkpoint(lake, run_id, at, model.state_dict())
        old_last, old_state = meta["last_checkpoint"], meta["resume_state"]
        old_best = meta["best_checkpoint"]
        meta["last_checkpoint"] = path
        if meta["best_dev_ccc"] is None or dev["mean"] > meta["best_dev_ccc"]["mean"]:
            meta.update(best_checkpoint=path, best_step=at, best_dev_ccc=dev)
            evals_since_best = 0
        else:
            evals_since_best += 1
        tensors, groups = _optimizer_tensors(optimizer)
        tensors["torch_rng"] = torch.get_rng_state()
        from safetensors.torch import save

        optim_path = run_path(run_id, f"optim-{at:08d}.safetensors")
        lake.storage.write_bytes(optim_path, save(tensors))
        state_path = run_path(run_id, f"state-{at:08d}.json")
        lake.storage.write_bytes(state_path, json.dumps({
            "step": at, "evals_since_best": evals_since_best, "optimizer": optim_path,
            "param_groups": groups, "checkpoint": path}, indent=2).encode())
        meta.update(resume_state=state_path, steps=at, status=status)
        write_run_meta(lake, run_id, meta)
        keep = {path, meta["best_checkpoint"]}
        for stale in {old_best, old_last} - keep - {None}:
            lake.storage.remove(stale)
        if old_state and old_state != state_path:
            old = json.loads(lake.storage.read_bytes(old_state))
            if old["optimizer"] != optim_path:
                lake.storage.remove(old["optimizer"])
            lake.storage.remove(old_state)

    if step == 0:
        initial = evaluate()
        meta["initial_dev_ccc"] = initial
        meta["history"].append({"step": 0, "train_loss": None, "dev_ccc": initial})
        checkpoint(0, initial, "running")

    status, nan_step = "completed", None
    losses: list[float] = []
    clips_seen = 0
    train_started = time.monotonic()
    model.train()
    order_epoch, order = -1, []
    dev = meta["best_dev_ccc"]
    with progress_bar(f"train {student}", total=total) as advance:
        advance(step)
        while step < total:
            epoch, index = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = train_source.epoch_order(seed, epoch), epoch
            ids = order[index * batch_size:(index + 1) * batch_size]
            x, y = make_batch(train_source, ids, data.targets, hp=hp, seed=seed, step=step)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, base=lr, total=total, warmup=warmup)
            loss = distillation_loss(model(x), y, ccc_weight=hp.ccc_weight)
            if not torch.isfinite(loss):
                status, nan_step = "stopped_nan", step
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            clips_seen += len(ids)
            losses.append(float(loss.detach()))
            last = step == total
            if step % eval_every == 0 or last:
                dev = evaluate()
                meta["history"].append({"step": step, "train_loss": float(np.mean(losses)),
                                        "dev_ccc": dev})
                losses = []
                checkpoint(step, dev, "running")
                if evals_since_best >= hp.patience and not last:
                    status = "early_stopped"
                    break
            advance(1, loss=float(loss.detach()),
                    dev_ccc=(dev or {}).get("mean", float("nan")))
            if stop_at_step is not None and step >= stop_at_step and step < total:
                status = "interrupted"
                break
            if time_budget_s is not None and time.monotonic() - started > time_budget_s:
                status = "stopped_budget"
                break
    if status in ("interrupted", "stopped_budget") and meta.get("steps") != step:
        dev = evaluate()
        meta["history"].append({"step": step, "train_loss": float(np.mean(losses))
                                if losses else None, "dev_ccc": dev})
        checkpoint(step, dev, status)
    train_time = time.monotonic() - train_started
    meta.update(status=status, finished_at=utcnow().isoformat())
    if nan_step is not None:
        meta["nan_step"] = nan_step
        meta["error"] = (f"loss became NaN/inf at step {nan_step}; kept the last good checkpoint "
                         f"{meta['last_checkpoint']} (try a lower --lr)")
    write_run_meta(lake, run_id, meta)
    return {
        "run_id": run_id, "student": student, "teacher_id": data.teacher_id,
        "params": params, "status": status,
        "steps": meta["steps"], "best_step": meta["best_step"],
        "best_dev_ccc": meta["best_dev_ccc"], "initial_dev_ccc": meta["initial_dev_ccc"],
        "last_dev_ccc": meta["history"][-1]["dev_ccc"], "best_checkpoint":
        meta["best_checkpoint"], "last_checkpoint": meta["last_checkpoint"],
        "train_clips": meta["train_clips"], "dev_clips": meta["dev_clips"],
        "clips_per_s": round(clips_seen / train_time, 2) if train_time > 0 else None,
        "seconds": round(time.monotonic() - started, 2), "nan_step": nan_step,
        "error": meta.get("error"),
    }


# -- several students -------------------------------------------------------------------
def train_students(
    lake: Lake,
    *,
    students: list[str],
    teacher_id: str | None,
    epochs: int | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    crop_s: float = 2.0,
    batch_size: int = 16,
    lr: float | None = None,
    ccc_weight: float = 1.0,
    mixup: bool = False,
    eval_every: int | None = None,
    patience: int = 5,
    resume: str | None = None,
    executor: Executor | None = None,
    student_options: Mapping[str, Mapping[str, Any]] | None = None,
    corpora: list[str] | None = None,
    dev_fraction: float = DEFAULT_DEV_FRACTION,
    time_budget_s: float | None = None,
    num_threads: int = 1,
    runner: Callable[..., dict] | None = None,
) -> dict[str, Any]:
    """Train several students on one teacher's labels (or resume one run).

    All inputs are checked before any training starts (unknown student, teacher id
    without labels, too few clips for the split, crop longer than every clip). The split
    is stored once, then each student trains as one task: sequentially by default, on
    ``executor`` when given (a thread pool, or Dask through the Prefect flow).

    Args:
        lake: The lake.
        students: Student names (see :data:`ser_pipeline.students.STUDENTS`).
        teacher_id: Teacher whose labels are the targets.
        epochs: Epochs (default 30 when ``max_steps`` is not set either).
        max_steps: Optimiser steps (caps ``epochs`` when both are set).
        seed: Seed for initialisation, data order and augmentation.
        crop_s: Training crop length in seconds.
        batch_size: Clips per step.
        lr: AdamW learning rate (default per family: 3e-3 Wav2Small, 1e-3 MobileNets).
        ccc_weight: Weight of the ``1 - CCC`` term added to the MSE.
        mixup: Mix pairs of clips and their targets.
        eval_every: Steps between dev evaluations/checkpoints (default one epoch, >= 50).
        patience: Evaluations without a better dev CCC before early stopping.
        resume: Run id to continue (the other options come from that run).
        executor: Where to run the per-student tasks.
        student_options: ``{student name: constructor options}``.
        corpora: Train on these corpora only (default all labelled ones).
        dev_fraction: Dev share of the stored split.
        time_budget_s: Per-run wall-clock budget (the run stops resumably when spent).
        num_threads: torch threads per run (fixed for reproducibility).
        runner: Callable used per student instead of :func:`train_one` (the flow passes a
            Prefect task submitter).

    Returns:
        ``{teacher_id, split_name, train_clips, dev_clips, runs: [run record, ...]}``.
    """
    runner = runner or train_one
    if resume:
        run = runner(lake.url, resume=resume, time_budget_s=time_budget_s)
        return {"teacher_id": run["teacher_id"], "resumed": resume, "runs": [run]}
    if not students:
        raise TrainInputError("name at least one student (--student wav2small)")
    for name in students:
        check_student(name)
    if not teacher_id:
        raise TrainInputError("a teacher id is required (--teacher-id); teacher ids with labels: "
                              + (", ".join(teacher_ids(lake)) or "none"))
    hp = Hyperparams(crop_s=crop_s, batch_size=batch_size, lr=lr, ccc_weight=ccc_weight,
                     mixup=mixup, epochs=epochs, max_steps=max_steps, eval_every=eval_every,
                     patience=patience, dev_fraction=dev_fraction, num_threads=num_threads,
                     corpora=sorted(corpora) if corpora else None)
    data = prepare_data(lake, teacher_id=teacher_id, corpora=hp.corpora,
                        dev_fraction=dev_fraction, crop_s=crop_s)
    options = student_options or {}
    jobs = [{"student": name, "teacher_id": teacher_id, "seed": seed,
             "hyperparams": hp.to_dict(), "student_options": dict(options.get(name, {})),
             "run_id": new_run_id(name), "time_budget_s": time_budget_s}
            for name in students]
    if executor is not None:
        futures = [executor.submit(runner, lake.url, **job) for job in jobs]
        runs = [future.result() for future in futures]
    else:
        runs = [runner(lake.url if runner is not train_one else lake, **job) for job in jobs]
    return {"teacher_id": teacher_id, "teacher_sha256": data.teacher_sha256,
            "split_name": data.split_name, "corpora": data.corpora,
            "train_clips": len(data.train_ids), "dev_clips": len(data.dev_ids), "runs": runs}
