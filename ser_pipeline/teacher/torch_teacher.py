"""The torch teacher (``hf:`` specs): a saved wav2vec2 / WavLM A/D/V model, loaded strictly.

:func:`load_hf_teacher` finds the model folder (local, or the Hub cache), hashes its
weights, refuses any key that does not fit and reads the licence; :class:`TorchTeacher`
runs it with a mask, on CPU or CUDA, in fp32, fp16, bf16 or dynamic int8.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import threading
from pathlib import Path

import numpy as np

from ser_pipeline.teacher.core import (
    Teacher,
    TeacherError,
    license_for_id,
    make_teacher_id,
)

WEIGHT_SUFFIXES = (".safetensors", ".bin")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


def weights_sha256(folder: Path) -> str:
    """sha256 of the weight file (or of the names and hashes of several files)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise TeacherError(f"{folder} has no weight files (*.safetensors or *.bin): "
                           "point the spec at a folder written by save_pretrained")
    hashes = []
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        hashes.append((path.name, digest.hexdigest()))
    if len(hashes) == 1:
        return hashes[0][1]
    return hashlib.sha256(json.dumps(hashes).encode()).hexdigest()


class TorchTeacher(Teacher):
    """An :class:`~ser_pipeline.teacher.model.Wav2Vec2ForADV` / ``WavLMForADV`` in torch."""

    def __init__(self, model, *, name: str, sha256: str, license: str | None,
                 is_random: bool, device: str = "cpu", precision: str = "auto") -> None:
        import torch

        self.device = device
        self.precision = _resolve_precision(precision, device)
        if self.precision == "int8":
            # Only the transformer's Linear layers (most of the FLOPs). The small head stays
            # fp32: quantising out_proj costs fidelity for no measurable speed. Per-channel
            # weight scales keep CCC vs fp32 higher than per-tensor ones (measured).
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            spec = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
                    if isinstance(module, torch.nn.Linear) and ".encoder.layers." in name}
            model = quantize_dynamic(model.float(), spec, dtype=torch.qint8)
        self.model = model.to(device).eval()
        self.name = name
        self.sha256 = sha256
        self.license = license
        self.is_random = is_random
        self.teacher_id = make_teacher_id(name, sha256, is_random=is_random)
        self._lock = threading.Lock()  # one forward at a time: torch already uses every core

    def info(self) -> dict:
        return {**super().info(), "precision": self.precision}

    def _run_batch(self, signals: list[np.ndarray]) -> np.ndarray:
        import torch

        longest = max(signal.size for signal in signals)
        batch = np.zeros((len(signals), longest), dtype=np.float32)
        mask = np.zeros((len(signals), longest), dtype=np.int64)
        for row, signal in enumerate(signals):
            batch[row, :signal.size] = signal
            mask[row, :signal.size] = 1
        pin = self.device.startswith("cuda")
        values = torch.from_numpy(batch)
        attention = torch.from_numpy(mask) if len(signals) > 1 else None
        if pin:
            values = values.pin_memory().to(self.device, non_blocking=True)
            attention = attention.to(self.device) if attention is not None else None
        autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        with self._lock, torch.inference_mode(), torch.autocast(
            device_type="cuda" if pin else "cpu", dtype=autocast_dtype,
            enabled=autocast_dtype is not None,
        ):
            logits = self.model(values, attention)
        return logits.float().cpu().numpy().astype(np.float64)


def _resolve_precision(precision: str, device: str) -> str:
    import torch

    if precision not in PRECISIONS:
        raise TeacherError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    on_cuda = device.startswith("cuda")
    if precision == "auto":
        if not on_cuda:
            return "fp32"  # bf16 autocast ran 10x slower on this AVX2 CPU
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "int8" and on_cuda:
        raise TeacherError("int8 (dynamic quantisation) is a CPU path: use --precision "
                           "bf16/fp16 on CUDA")
    return precision


def _teacher_folder(target: str) -> tuple[Path, str]:
    """Local folder for ``hf:<target>`` and a readable name (Hub ids come from the cache)."""
    path = Path(target).expanduser()
    if path.exists():
        if not path.is_dir():
            raise TeacherError(f"{path} is a file; hf: specs take a model folder (use onnx: "
                               "for .onnx files)")
        if not (path / "config.json").exists():
            raise TeacherError(f"{path} has no config.json: it is not a saved model folder "
                               "(create one with 'ser teacher init' or save_pretrained)")
        return path.resolve(), path.resolve().name
    if target.startswith((".", "/", "~")) or target.count("/") != 1:
        raise TeacherError(f"no model folder at {target!r}: check the path, or give a Hub id "
                           "like audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim")
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(target, allow_patterns=["*.json", "*.safetensors", "*.bin",
                                                            "*.md"])
    except Exception as error:  # offline, unknown repo, no network: one actionable line
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "yes")
        hint = ("HF_HUB_OFFLINE is set and it is not in the local cache" if offline
                else f"the Hub could not provide it ({type(error).__name__})")
        raise TeacherError(f"cannot load Hub model {target!r}: {hint}; download it on a "
                           "connected machine (huggingface-cli download) or pass a local "
                           "folder as hf:/path/to/model") from None
    return Path(folder), target.split("/")[-1]


def load_torch_model(folder: Path):
    """Strictly load a saved A/D/V model: any missing/unexpected/mismatched key is an error."""
    import warnings

    from transformers.utils import logging as hf_logging

    from ser_pipeline.teacher.model import MODEL_CLASSES

    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise TeacherError(f"{folder / 'config.json'} is unreadable: {error}") from None
    model_type = config.get("model_type")
    if model_type not in MODEL_CLASSES:
        raise TeacherError(f"{folder} holds a {model_type!r} model; teachers must be wav2vec2 "
                           "or wavlm A/D/V regression models")
    if config.get("num_labels", len(config.get("id2label", {}))) != 3:
        raise TeacherError(f"{folder} is not an A/D/V model: it has "
                           f"{len(config.get('id2label', {}))} outputs, teachers need 3")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # our error names the keys; skip the load report
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = MODEL_CLASSES[model_type].from_pretrained(
                str(folder), output_loading_info=True)
    except pickle.UnpicklingError as error:
        # transformers loads *.bin with torch.load(weights_only=True): a pickle that needs
        # anything but tensors (code to run) is refused before it can execute.
        blocked = next((line.strip() for line in str(error).splitlines()
                        if "GLOBAL" in line), type(error).__name__)
        raise TeacherError(f"refusing to load the weights in {folder}: the .bin file holds a "
                           f"pickle that is not plain tensors ({blocked}); use a "
                           "model.safetensors from a source you trust") from None
    except (OSError, RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TeacherError(f"weights in {folder} do not fit the {model_type} A/D/V "
                           f"architecture: {first}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k) for k in info.get(kind) or [])
        if keys:
            shown = ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
            problems.append(f"{kind.replace('_', ' ')}: {shown}")
    if info.get("error_msgs"):
        problems.append("errors: " + "; ".join(map(str, info["error_msgs"]))[:300])
    if problems:
        raise TeacherError(f"weights in {folder} do not match the {model_type} A/D/V model "
                           f"({'; '.join(problems)}): re-save the model or fix the key names")
    return model, config


def _license_for(folder: Path, config: dict, hub_id: str | None) -> str | None:
    if config.get("ser_license"):
        return config["ser_license"]
    if hub_id and license_for_id(hub_id):
        return license_for_id(hub_id)
    readme = folder / "README.md"
    if readme.exists():
        for line in readme.read_text(errors="replace").splitlines()[:30]:
            if line.strip().lower().startswith("license:"):
                return line.split(":", 1)[1].strip() or None
    return None


def load_hf_teacher(target: str, *, device: str = "cpu", precision: str = "auto") -> TorchTeacher:
    folder, name = _teacher_folder(target)
    sha = weights_sha256(folder)
    model, config = load_torch_model(folder)
    hub_id = None if Path(target).expanduser().exists() else target
    return TorchTeacher(
        model, name=config.get("ser_name") or name, sha256=sha,
        license=_license_for(folder, config, hub_id), is_random=bool(config.get("ser_random")),
        device=device, precision=precision,
    )
