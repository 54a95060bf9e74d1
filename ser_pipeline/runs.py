"""Training runs in the lake: ``runs/<run_id>/`` with metadata and safetensors checkpoints.

Layout::

    runs/<run_id>/run.json               metadata (student, options, teacher, lake snapshot,
                                         seed, git sha, hyper-parameters, best checkpoint)
    runs/<run_id>/ckpt-<step>.safetensors  model weights (safetensors only: no pickle)
    runs/<run_id>/state-<step>.json      optimiser-free resume state (step, rng, epoch)

Checkpoints load only through safetensors, so a pickle planted in a run folder is never
executed.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from typing import Any

from ser_pipeline.lake import Lake
from ser_pipeline.storage import safe_name


class RunError(RuntimeError):
    """A run folder is missing or incomplete; the message names the run and the fix."""


def new_run_id(student: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{safe_name(student, what='student')}-{stamp}-{secrets.token_hex(3)}"


def run_path(run_id: str, name: str = "") -> str:
    base = f"runs/{safe_name(run_id, what='run id')}"
    return f"{base}/{name}" if name else base


def write_run_meta(lake: Lake, run_id: str, meta: dict[str, Any]) -> None:
    lake.storage.write_bytes(run_path(run_id, "run.json"),
                             json.dumps(meta, indent=2, sort_keys=True, default=str).encode())


def read_run_meta(lake: Lake, run_id: str) -> dict[str, Any]:
    try:
        return json.loads(lake.storage.read_bytes(run_path(run_id, "run.json")))
    except FileNotFoundError:
        known = ", ".join(list_runs(lake)[-5:]) or "none"
        raise RunError(
            f"run {run_id!r} not found in lake {lake.url} (recent runs: {known}); "
            "train one with 'ser train'"
        ) from None


def list_runs(lake: Lake) -> list[str]:
    return lake.storage.list_dirs("runs")


def save_checkpoint(lake: Lake, run_id: str, step: int, state_dict: dict) -> str:
    """Write model weights as safetensors; returns the root-relative path."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    path = run_path(run_id, f"ckpt-{step:08d}.safetensors")
    lake.storage.write_bytes(path, save(tensors))
    return path


def load_checkpoint(lake: Lake, path: str) -> dict:
    """Load weights from safetensors only (never ``torch.load`` of a pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not path.endswith(".safetensors"):
        raise RunError(f"refusing to load {path}: only .safetensors checkpoints are accepted")
    try:
        return load(lake.storage.read_bytes(path))
    except SafetensorError as error:
        raise RunError(
            f"{lake.storage.uri(path)} is not a valid safetensors file: {error}"
        ) from None


def load_run_model(lake: Lake, run_id: str, *, which: str = "best"):
    """Rebuild a run's student and load its ``best`` (or ``last``) checkpoint.

    Returns ``(model, meta)``; the model is in eval mode on CPU.
    """
    from ser_pipeline.students import build_student

    meta = read_run_meta(lake, run_id)
    key = f"{which}_checkpoint"
    if not meta.get(key):
        raise RunError(
            f"run {run_id!r} has no {which} checkpoint yet (it may still be training or have "
            "failed before its first evaluation); train longer or pick another run"
        )
    model = build_student(meta["student"], **meta.get("student_options", {}))
    model.load_state_dict(load_checkpoint(lake, meta[key]))
    return model.eval(), meta
