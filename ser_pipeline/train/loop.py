"""The training loop of one run: optimiser, schedule, evaluation, stopping rules.

Every random draw is a function of ``(seed, step)`` (see :mod:`.source` and :mod:`.augment`)
and the learning rate is a function of the step, so a resumed run sees exactly the batches
and rates the uninterrupted run would have seen. With ``torch.use_deterministic_algorithms``
and a fixed thread count, two CPU runs with the same seed give identical weights and metrics.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

import numpy as np
import torch

from ser_pipeline.lake import Lake, utcnow
from ser_pipeline.progress import progress_bar
from ser_pipeline.runs import RunInfo, RunRuntime, load_checkpoint
from ser_pipeline.schemas import SAMPLE_RATE
from ser_pipeline.students import build_student, count_parameters, family_of
from ser_pipeline.train.dev import centre, dev_subset, predict_signals
from ser_pipeline.train.device import Precision, compiled, resolve_device
from ser_pipeline.train.ema import WeightAverage
from ser_pipeline.train.hparams import DEFAULT_EPOCHS, Hyperparams, Runtime
from ser_pipeline.train.loader import StepBatches, batch_stream
from ser_pipeline.train.loss import ccc_report, distillation_loss
from ser_pipeline.train.source import ClipSource
from ser_pipeline.train.state import RunState, git_sha
from ser_pipeline.train.targets import TrainData

#: Progress of every evaluation (step, train loss, dev CCC). flows/common.py routes this
#: logger into the Prefect task run log (flows.common.library_logs_in_run_log); the CLI's
#: local engine prints it.
log = logging.getLogger("ser_pipeline.train")


def log_evaluation(student: str, *, step: int, total: int, train_loss: float | None,
                   dev: dict[str, float]) -> None:
    """One line per evaluation: ``wav2small step 200/600 loss 0.412 dev CCC A .. D .. V ..``."""
    loss = "-" if train_loss is None else f"{train_loss:.4f}"
    log.info("%s step %d/%d train loss %s dev CCC A %.3f D %.3f V %.3f (mean %.3f)", student,
             step, total, loss, dev["arousal"], dev["dominance"], dev["valence"], dev["mean"])


def lr_at(step: int, *, base: float, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to 0 at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Determinism:
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


def run(lake: Lake, *, run_id: str, student: str, data: TrainData, hp: Hyperparams, seed: int,
        student_options: dict, state: dict | None, time_budget_s: float | None,
        stop_at_step: int | None, runtime: Runtime | None = None) -> dict[str, Any]:
    """Train one run to its end (or resume it from ``state``); returns the run record."""
    started = time.monotonic()
    runtime = runtime or Runtime()
    device = resolve_device(runtime.device)
    precision = Precision.for_device(device)
    torch.manual_seed(seed)
    model = build_student(student, **student_options).to(device)
    forward = compiled(model, enabled=runtime.compile)
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
    lr = hp.lr or family_of(student).learning_rate
    train_seconds = sum(data.durations[i] for i in data.train_ids)
    cache = train_seconds <= hp.cache_limit_s
    train_source = ClipSource(lake, data.snapshot["audio"], data.train_ids, cache=cache,
                              shuffle_clips=hp.shuffle_clips)
    dev_ids = dev_subset(data.dev_ids, hp.max_dev_clips)
    dev_source = ClipSource(lake, data.snapshot["audio"], dev_ids, cache=True)
    max_eval = int(hp.eval_max_s * SAMPLE_RATE)
    dev_signals = [centre(dev_source.get(i), max_eval) for i in dev_ids]
    dev_truth = np.array([data.targets[i] for i in dev_ids], dtype=np.float64)
    del dev_source

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=hp.weight_decay)
    info = RunInfo(
        run_id=run_id, student=student, student_options=student_options,
        teacher_id=data.teacher_id, teacher_sha256=data.teacher_sha256,
        lake_snapshot=data.snapshot, seed=seed, git_sha=git_sha(),
        hyperparams={**hp.to_dict(), "lr": lr, "batch_size": batch_size,
                     "total_steps": total, "steps_per_epoch": steps_per_epoch,
                     "eval_every": eval_every, "warmup_steps": warmup, "cache_audio": cache},
        runtime=RunRuntime(device=str(device), precision=precision.dtype,
                           workers=runtime.workers, compile=runtime.compile),
        params=params, corpora=data.corpora, split_name=data.split_name,
        train_clips=len(data.train_ids), dev_clips=len(dev_ids),
        train_audio_s=round(train_seconds, 2), skipped=data.skipped, status="running",
        created_at=utcnow(),
    )
    run_state = RunState(lake, info, precision=precision)
    # The weight average is what is evaluated, checkpointed and exported; with decay 0 it
    # is the live model itself.
    ema = WeightAverage(model, decay=hp.ema_decay)
    step = 0
    if state is not None:
        step = run_state.resume(state, model=ema.module, optimizer=optimizer)
        if ema.enabled:
            ema.restore_live(load_checkpoint(lake, state["optimizer"]))
    run_state.write()

    def evaluate() -> dict[str, float]:
        return ccc_report(dev_truth, predict_signals(ema.module, dev_signals))

    def checkpoint(at: int, dev: dict[str, float], status: str) -> None:
        run_state.checkpoint(at, dev, status, model=ema.module, optimizer=optimizer,
                             extra_tensors=ema.live_tensors())

    if step == 0:
        initial = evaluate()
        run_state.record(0, None, initial)
        log_evaluation(student, step=0, total=total, train_loss=None, dev=initial)
        checkpoint(0, initial, "running")

    status, nan_step = "completed", None
    losses: list[float] = []
    clips_seen, waited = 0, 0.0
    model.train()
    batches = StepBatches(train_source, data.targets, hp=hp, seed=seed, batch_size=batch_size,
                          steps_per_epoch=steps_per_epoch)
    stream = batch_stream(batches, start=step, total=total, workers=runtime.workers,
                          pin_memory=device.type == "cuda")
    dev = info.best_dev_ccc
    train_started = time.monotonic()
    with contextlib.closing(stream), progress_bar(f"train {student}", total=total) as advance:
        advance(step)
        asked = time.monotonic()
        for x, y in stream:  # the batch of `step`
            waited += time.monotonic() - asked
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, base=lr, total=total, warmup=warmup)
            with precision.autocast():
                loss = distillation_loss(forward(x), y, ccc_weight=hp.ccc_weight)
            if not torch.isfinite(loss):
                status, nan_step = "stopped_nan", step
                break
            optimizer.zero_grad(set_to_none=True)
            precision.step(loss, optimizer)
            ema.update(step=step)
            step += 1
            clips_seen += len(x)
            losses.append(float(loss.detach()))
            last = step == total
            if step % eval_every == 0 or last:
                dev = evaluate()
                run_state.record(step, float(np.mean(losses)), dev)
                log_evaluation(student, step=step, total=total,
                               train_loss=float(np.mean(losses)), dev=dev)
                losses = []
                checkpoint(step, dev, "running")
                if run_state.evals_since_best >= hp.patience and not last:
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
            asked = time.monotonic()
    if status in ("interrupted", "stopped_budget") and info.steps != step:
        dev = evaluate()
        train_loss = float(np.mean(losses)) if losses else None
        run_state.record(step, train_loss, dev)
        log_evaluation(student, step=step, total=total, dev=dev, train_loss=train_loss)
        checkpoint(step, dev, status)
    train_time = time.monotonic() - train_started
    # Share of the loop's wall time spent waiting for the next batch (this session only):
    # near 0 means the data path keeps up; near 1 means add --workers.
    wait = round(waited / train_time, 4) if train_time > 0 else None
    info.status, info.finished_at, info.data_wait_fraction = status, utcnow(), wait
    if nan_step is not None:
        info.nan_step = nan_step
        info.error = (f"loss became NaN/inf at step {nan_step}; kept the last good checkpoint "
                      f"{info.last_checkpoint} (try a lower --lr)")
    run_state.write()
    return {
        "run_id": run_id, "student": student, "teacher_id": data.teacher_id,
        "params": params, "status": status,
        "steps": info.steps, "best_step": info.best_step,
        "best_dev_ccc": info.best_dev_ccc, "initial_dev_ccc": info.initial_dev_ccc,
        "last_dev_ccc": dict(info.history[-1].dev_ccc), "best_checkpoint":
        info.best_checkpoint, "last_checkpoint": info.last_checkpoint,
        "train_clips": info.train_clips, "dev_clips": info.dev_clips,
        "clips_per_s": round(clips_seen / train_time, 2) if train_time > 0 else None,
        "seconds": round(time.monotonic() - started, 2), "nan_step": nan_step,
        "error": info.error, "data_wait_fraction": wait, "device": str(device),
        "precision": precision.dtype, "workers": runtime.workers,
    }
