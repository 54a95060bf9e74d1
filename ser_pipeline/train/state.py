"""Run state: ``run.json``, checkpoints and the exact-resume state, all without pickle.

At every evaluation the weights go to ``runs/<run_id>/ckpt-<step>.safetensors`` and the
resume state to ``state-<step>.json`` (step, evaluations since best, optimiser param groups)
plus ``optim-<step>.safetensors`` (AdamW moments, the torch RNG and, on CUDA, the GPU's
RNG; an fp16 loss scaler's state goes into the JSON). The best checkpoint
(highest dev CCC averaged over A/D/V) and the last are kept.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import torch

from ser_pipeline.lake import Lake, utcnow
from ser_pipeline.runs import (
    Evaluation,
    RunError,
    RunInfo,
    load_checkpoint,
    read_run_meta,
    run_path,
    save_checkpoint,
    write_run_meta,
)
from ser_pipeline.train.device import Precision, rng_state, set_rng_state


def git_sha() -> str | None:
    """The commit of the code that trains (provenance in ``run.json``), if known."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def load_resume_state(lake: Lake, run_id: str) -> tuple[RunInfo, dict[str, Any]]:
    """``(run info, saved state)`` of a run to resume.

    Raises:
        RunError: the run has no saved state.
    """
    info = read_run_meta(lake, run_id)
    if not info.resume_state:
        raise RunError(f"run {run_id!r} has no saved state to resume from; start a new run")
    missing = [name for name in ("teacher_id", "seed", "lake_snapshot")
               if getattr(info, name) is None]
    if missing:
        raise RunError(f"run {run_id!r} cannot be resumed: its run.json lacks "
                       f"{', '.join(missing)} (it was not written by 'ser train'); "
                       "start a new run")
    return info, json.loads(lake.storage.read_bytes(info.resume_state))


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    """The optimiser's moments as flat named tensors, and its param groups (JSON-able)."""
    state = optimizer.state_dict()
    # On CPU so that a CUDA run's state saves and loads anywhere (load_state_dict moves the
    # moments back to the parameters' device).
    tensors = {f"state.{index}.{key}": torch.as_tensor(value).detach().cpu().clone()
               for index, values in state["state"].items() for key, value in values.items()}
    return tensors, state["param_groups"]


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


#: What a resume carries over from the interrupted run's ``run.json``; the rest (data,
#: hyper-parameters, runtime) the resuming session records afresh. ``resume_state`` and
#: ``steps`` too: run.json is rewritten at once, and a crash before the next checkpoint
#: must still find the state this resume started from.
RESUMED_FIELDS = ("history", "best_step", "best_checkpoint", "last_checkpoint", "steps",
                  "resume_state", "created_at", "git_sha")


class RunState:
    """The :class:`RunInfo` of one run and the checkpoint files it points at."""

    def __init__(self, lake: Lake, info: RunInfo, *, precision: Precision | None = None) -> None:
        self.lake, self.info = lake, info
        self.precision = precision or Precision(torch.device("cpu"))
        self.evals_since_best = 0

    def write(self) -> None:
        """Rewrite ``run.json`` from :attr:`info`."""
        write_run_meta(self.lake, self.info.run_id, self.info)

    def record(self, step: int, train_loss: float | None, dev: dict[str, float]) -> None:
        """Add an evaluation to the run's history (written with the next checkpoint)."""
        self.info.history.append(Evaluation(step=step, train_loss=train_loss, dev_ccc=dev))

    def resume(self, state: dict[str, Any], *, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer) -> int:
        """Load the last checkpoint, optimiser moments and RNG; returns the step to go on from."""
        info = self.info
        previous = read_run_meta(self.lake, info.run_id)
        for name in RESUMED_FIELDS:
            setattr(info, name, getattr(previous, name))
        info.resumed_at = [*previous.resumed_at, utcnow()]
        info.resumed_git_sha = git_sha()
        model.load_state_dict(load_checkpoint(self.lake, info.last_checkpoint))
        tensors = load_checkpoint(self.lake, state["optimizer"])
        restore_optimizer(optimizer, tensors, state["param_groups"])
        set_rng_state(tensors, self.precision.device)
        self.precision.load_state(state.get("grad_scaler"))
        self.evals_since_best = state["evals_since_best"]
        return state["step"]

    def checkpoint(self, at: int, dev: dict[str, float], status: str, *,
                   model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   extra_tensors: dict[str, torch.Tensor] | None = None) -> None:
        """Save weights and resume state at step ``at``; track the best and early stopping.

        ``dev`` is the evaluation at ``at``, already in the history (:meth:`record`).
        ``model`` is what the checkpoint holds (the weight average when the run keeps one);
        ``extra_tensors`` (e.g. the live weights behind an average) join the resume state.
        """
        lake, info = self.lake, self.info
        run_id = info.run_id
        # Crash safety: write every new file, then point run.json at them, and only then
        # delete what the old run.json pointed at. A kill at any moment leaves run.json
        # naming files that exist, so --resume always works.
        path = save_checkpoint(lake, run_id, at, model.state_dict())
        old_last, old_state = info.last_checkpoint, info.resume_state
        old_best = info.best_checkpoint
        info.last_checkpoint = path
        best = info.best_dev_ccc
        if best is None or dev["mean"] > best["mean"]:
            info.best_checkpoint, info.best_step = path, at
            self.evals_since_best = 0
        else:
            self.evals_since_best += 1
        tensors, groups = optimizer_tensors(optimizer)
        tensors.update(rng_state(self.precision.device))
        tensors.update(extra_tensors or {})
        from safetensors.torch import save

        optim_path = run_path(run_id, f"optim-{at:08d}.safetensors")
        lake.storage.write_bytes(optim_path, save(tensors))
        state_path = run_path(run_id, f"state-{at:08d}.json")
        lake.storage.write_bytes(state_path, json.dumps({
            "step": at, "evals_since_best": self.evals_since_best, "optimizer": optim_path,
            "param_groups": groups, "checkpoint": path,
            "grad_scaler": self.precision.state()}, indent=2).encode())
        info.resume_state, info.steps, info.status = state_path, at, status
        self.write()
        keep = {path, info.best_checkpoint}
        for stale in {old_best, old_last} - keep - {None}:
            lake.storage.remove(stale)
        if old_state and old_state != state_path:
            old = json.loads(lake.storage.read_bytes(old_state))
            if old["optimizer"] != optim_path:
                lake.storage.remove(old["optimizer"])
            lake.storage.remove(old_state)
