"""Where a run computes: device choice, mixed precision and optional ``torch.compile``.

CPU runs stay in fp32 (bf16 autocast ran 10x slower on this project's CPUs) and are
bit-for-bit deterministic. On CUDA the forward pass runs under bf16 autocast where the GPU
supports it, otherwise fp16 autocast with a :class:`torch.amp.GradScaler` against underflow.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ser_pipeline.train.hparams import TrainInputError

DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(device: str, *, slot: int = 0) -> torch.device:
    """``auto`` (CUDA when visible), ``cpu``, ``cuda`` or ``cuda:N`` as a torch device.

    ``cuda`` without an index takes GPU ``slot % device_count``: :func:`train_students`
    gives each student its own slot, so students trained side by side by one process
    spread over the GPUs it sees (one student per GPU).

    Raises:
        TrainInputError: an unknown name, CUDA asked for where torch sees none, or an index
            past the visible GPUs; the message names the fix.
    """
    name = (device or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise TrainInputError(f"unknown device {device!r}: use {DEVICES}")
    if not torch.cuda.is_available():
        build = torch.version.cuda and f"CUDA {torch.version.cuda} build" or "CPU-only build"
        raise TrainInputError(
            f"--device {device} asked for CUDA but torch {torch.__version__} ({build}) sees no "
            "GPU here: use --device cpu (or auto), or run on a machine with a CUDA GPU")
    index = int(name[5:]) if ":" in name else slot % torch.cuda.device_count()
    if index >= torch.cuda.device_count():
        raise TrainInputError(f"--device {device}: only {torch.cuda.device_count()} CUDA "
                              f"device(s) visible (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    # cuBLAS is only deterministic with a fixed workspace; it must be set before its first use.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.device("cuda", index)


@dataclass
class Precision:
    """Autocast and loss scaling of one device: ``fp32`` on CPU, ``bf16``/``fp16`` on CUDA."""

    device: torch.device
    dtype: str = "fp32"
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def for_device(cls, device: torch.device) -> Precision:
        """The fastest safe precision of ``device``."""
        if device.type != "cuda":
            return cls(device)
        if torch.cuda.is_bf16_supported():
            return cls(device, "bf16")
        return cls(device, "fp16", torch.amp.GradScaler("cuda"))

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass and loss run inside this."""
        if self.dtype == "fp32":
            yield
            return
        dtype = torch.bfloat16 if self.dtype == "bf16" else torch.float16
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            yield

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and optimiser step, scaled when fp16 needs it."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state(self) -> dict[str, Any] | None:
        """The loss scaler's state (JSON-able) for an exact resume; None without a scaler."""
        return dict(self.scaler.state_dict()) if self.scaler is not None else None

    def load_state(self, state: dict[str, Any] | None) -> None:
        """Inverse of :meth:`state`."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def compiled(model: torch.nn.Module, *, enabled: bool) -> torch.nn.Module:
    """``torch.compile(model)`` when enabled: the training forward only.

    The returned module shares the parameters, so checkpoints keep saving ``model`` itself
    (a compiled module's ``state_dict`` would prefix every key with ``_orig_mod.``).
    """
    return torch.compile(model) if enabled else model


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The generator states a resume must restore: torch's CPU one and, on CUDA, the GPU's."""
    states = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_state(tensors: dict[str, torch.Tensor], device: torch.device) -> None:
    """Inverse of :func:`rng_state` (a CUDA state is restored only on a CUDA run)."""
    torch.set_rng_state(tensors["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in tensors:
        torch.cuda.set_rng_state(tensors["cuda_rng"], device)
