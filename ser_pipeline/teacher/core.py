"""Teachers behind one interface: strict loading, batched windowed prediction.

:class:`Teacher` is the interface; :class:`TorchTeacher` (``hf:`` specs) and
:class:`EnsembleTeacher` live here. The ONNX teacher (:mod:`.onnx`) builds on this module,
and :mod:`.load` turns spec strings into teachers of every kind.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_pipeline.schemas import SAMPLE_RATE
from ser_pipeline.windows import weighted_average, window_bounds

AUDEERING_LICENSE = "cc-by-nc-sa-4.0"
#: Markers of the audEERING dimensional models (and ensembles built on them) in a hub id
#: or a teacher id.
_AUDEERING_MARKERS = ("audeering", "w2v2-l-robust", "wavlm-large")
MIN_SAMPLES = 400  # the wav2vec2 feature encoder's receptive field (25 ms at 16 kHz)
WEIGHT_SUFFIXES = (".safetensors", ".bin")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


class TeacherError(ValueError):
    """A teacher cannot be loaded or used; the message says what to fix."""


class ClipError(ValueError):
    """One clip cannot be labeled; ``reason`` is a stable quarantine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def check_signal(signal: np.ndarray) -> np.ndarray:
    """A clip the model can take (float32, 1-D, finite, >= 25 ms) or a :class:`ClipError`."""
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 1:
        raise ClipError("bad_shape", f"expected a mono 1-D signal, got shape {signal.shape}")
    if signal.size < MIN_SAMPLES:
        raise ClipError("too_short", f"{signal.size} samples; the teacher needs at least "
                        f"{MIN_SAMPLES} (25 ms at 16 kHz)")
    if not np.isfinite(signal).all():
        raise ClipError("non_finite_samples", "the signal contains NaN or infinite samples")
    return signal


class Teacher:
    """A model mapping 16 kHz mono signals to arousal, dominance, valence (not clipped).

    Subclasses implement :meth:`_run_batch`. Prediction cuts long clips into windows,
    sorts all windows by length and batches similar lengths together (little padding),
    then averages each clip's windows weighted by duration.
    """

    name: str
    teacher_id: str
    sha256: str
    license: str | None
    is_random: bool
    device: str = "cpu"
    #: ONNX graphs take no mask, so they are only fed batches of equal-length windows.
    equal_length_batches: bool = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.teacher_id!r})"

    def info(self) -> dict:
        """What a summary or manifest records about this teacher."""
        return {"teacher_id": self.teacher_id, "teacher_sha256": self.sha256,
                "license": self.license, "is_random": self.is_random, "device": self.device}

    def _run_batch(self, signals: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, signals: Sequence[np.ndarray], **options: float) -> np.ndarray:
        """Outputs ``[n, 3]`` (A, D, V) for ``signals``; options as :meth:`predict_with_windows`."""
        return self.predict_with_windows(signals, **options)[0]

    def predict_with_windows(
        self, signals: Sequence[np.ndarray], *, window_s: float = 10.0, overlap_s: float = 2.0,
        batch_seconds: float = 64.0, batch_size: int = 16,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Outputs ``[n, 3]`` and the number of windows per clip ``[n]``.

        Args:
            signals: 16 kHz mono float signals.
            window_s: clips longer than this are cut into windows of this length.
            overlap_s: overlap between consecutive windows.
            batch_seconds: bound on padded audio per batch (``max_len * batch``).
            batch_size: bound on windows per batch.

        Raises:
            ClipError: a clip is empty, too short or not finite (label quarantines it).
        """
        clean = [check_signal(signal) for signal in signals]
        pieces: list[tuple[int, int, int]] = []  # (clip, start, end)
        bounds_per_clip = []
        for index, signal in enumerate(clean):
            bounds = window_bounds(signal.size, window_s=window_s, overlap_s=overlap_s)
            # a tail shorter than the receptive field cannot be run; it joins its neighbour
            if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < MIN_SAMPLES:
                bounds = bounds[:-1]
                bounds[-1] = (bounds[-1][0], signal.size)
            bounds_per_clip.append(bounds)
            pieces.extend((index, start, end) for start, end in bounds)
        outputs = np.zeros((len(pieces), 3), dtype=np.float64)
        for batch in self._plan_batches(pieces, batch_seconds=batch_seconds,
                                        batch_size=batch_size):
            arrays = [clean[pieces[i][0]][pieces[i][1]:pieces[i][2]] for i in batch]
            outputs[batch] = self._run_batch(arrays)
        results = np.zeros((len(clean), 3), dtype=np.float64)
        n_windows = np.zeros(len(clean), dtype=np.int32)
        start = 0
        for index, bounds in enumerate(bounds_per_clip):
            results[index] = weighted_average(outputs[start:start + len(bounds)], bounds)
            n_windows[index] = len(bounds)
            start += len(bounds)
        return results, n_windows

    def _plan_batches(self, pieces: list[tuple[int, int, int]], *, batch_seconds: float,
                      batch_size: int) -> list[list[int]]:
        order = sorted(range(len(pieces)), key=lambda i: (pieces[i][2] - pieces[i][1], i))
        budget = max(batch_seconds, 1e-9) * SAMPLE_RATE
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            length = pieces[index][2] - pieces[index][1]
            longest = length  # sorted ascending: the newcomer is the longest
            if current and (
                len(current) >= batch_size or longest * (len(current) + 1) > budget
                or (self.equal_length_batches
                    and length != pieces[current[0]][2] - pieces[current[0]][1])
            ):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches


# -- torch teachers -------------------------------------------------------------------------
def resolve_device(device: str) -> str:
    """``cpu``, ``cuda[:N]`` or ``auto`` (CUDA when available); errors say what to fix."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TeacherError(f"device {device!r} requested but no CUDA GPU is visible to "
                               "torch here: use --device cpu (or auto)")
        return device
    raise TeacherError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads (explicit beats torch's guess on shared machines)."""
    if threads is not None:
        import torch

        if threads < 1:
            raise TeacherError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


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


def readable(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-") or "teacher"


def make_teacher_id(name: str, sha256: str, *, is_random: bool) -> str:
    name = readable(name)
    if is_random and "random" not in name:
        name = f"{name}-random"
    return f"{name}-{sha256[:12]}"


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


def license_for_id(name: str | None) -> str | None:
    """The licence of a teacher's weights as far as its hub id or teacher id tells it
    (``None``: the name does not say). The one rule the loader and the exporter share.

    Examples:
        >>> license_for_id("audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim")
        'cc-by-nc-sa-4.0'
        >>> license_for_id("my-lab/teacher") is None
        True
    """
    lowered = (name or "").lower()
    return AUDEERING_LICENSE if any(mark in lowered for mark in _AUDEERING_MARKERS) else None


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


# -- ensembles ------------------------------------------------------------------------------
class EnsembleTeacher(Teacher):
    """The average of several teachers' outputs (the paper's w2v2 + WavLM teacher)."""

    def __init__(self, members: list[Teacher]) -> None:
        if len(members) < 2:
            raise TeacherError("an ensemble needs at least two members: "
                               "ensemble:<spec>,<spec>")
        self.members = members
        self.sha256 = hashlib.sha256(",".join(m.sha256 for m in members).encode()).hexdigest()
        self.name = "ensemble-" + "+".join(m.name for m in members)
        self.is_random = any(m.is_random for m in members)
        licenses = sorted({m.license for m in members if m.license})
        self.license = " AND ".join(licenses) if licenses else None
        self.teacher_id = make_teacher_id(self.name, self.sha256, is_random=self.is_random)
        self.device = members[0].device

    def predict_with_windows(self, signals, **options) -> tuple[np.ndarray, np.ndarray]:
        outputs = []
        n_windows = None
        for member in self.members:
            out, n_windows = member.predict_with_windows(signals, **options)
            outputs.append(out)
        return np.mean(outputs, axis=0), n_windows


def split_members(body: str) -> list[str]:
    """Split ``a,b,[c,d]`` at top-level commas; square brackets group a member."""
    members, depth, current = [], 0, []
    for char in body:
        if char == "[":
            depth += 1
            if depth == 1:
                continue
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise TeacherError(f"unbalanced ']' in ensemble members {body!r}")
            if depth == 0:
                continue
        if char == "," and depth == 0:
            members.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth:
        raise TeacherError(f"unbalanced '[' in ensemble members {body!r}")
    members.append("".join(current).strip())
    if any(not m for m in members):
        raise TeacherError(f"empty member in ensemble {body!r}: use ensemble:<spec>,<spec>")
    return members
