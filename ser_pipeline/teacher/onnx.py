"""Teachers as ONNX: export (raw 16 kHz ``signal`` in, ``logits`` out) and ONNX Runtime.

The graph includes the per-utterance normalisation, so it is self-contained. It takes no
attention mask; :class:`OnnxTeacher` therefore only batches windows of equal length
(long clips cut into 10 s windows batch well; short clips of distinct lengths run one by
one, which costs ONNX Runtime little on CPU).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
import warnings
from pathlib import Path

import numpy as np

from ser_pipeline.teacher.core import Teacher, TeacherError, make_teacher_id


def export_teacher_onnx(spec_or_path: str, out: str | Path, *, opset: int = 18,
                        int8: bool = False) -> Path:
    """Export an ``hf:`` teacher (or a model folder) to one ONNX file.

    The dynamo exporter is tried first; if it fails, the TorchScript exporter
    (``dynamo=False``) is used. The teacher's id, sha256, licence and random flag travel in
    the file's metadata, so labels from the ONNX teacher keep their provenance.

    With ``int8=True`` the MatMul weights are quantised dynamically with per-channel scales
    (ONNX Runtime ``quantize_dynamic``): the fastest CPU path measured here (bench/teacher.py),
    with CCC >= 0.99 against fp32. The conv feature encoder stays fp32.

    Returns:
        The path of the written ``.onnx`` file.
    """
    import torch

    from ser_pipeline.teacher.core import TorchTeacher, load_teacher

    out = Path(out)
    if out.suffix != ".onnx":
        raise TeacherError(f"--out {out} must end in .onnx")
    spec = spec_or_path if ":" in str(spec_or_path).split("/")[0] else f"hf:{spec_or_path}"
    teacher = load_teacher(spec, device="cpu", precision="fp32")
    if not isinstance(teacher, TorchTeacher):
        raise TeacherError(f"only hf: teachers can be exported to ONNX, got {spec!r} (export "
                           "each ensemble member separately and use ensemble:onnx:a,onnx:b)")
    out.parent.mkdir(parents=True, exist_ok=True)
    model = _SignalToLogits(teacher.model).eval()
    example = torch.from_numpy(
        np.random.default_rng(0).standard_normal((2, 24_000)).astype(np.float32) * 0.1)
    tmp = out.with_name(f".tmp-{out.name}")
    errors = []
    for dynamo in (True, False):
        try:
            # the exporter prints progress on stdout; keep stdout clean for --json
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), \
                    contextlib.redirect_stdout(sys.stderr):
                warnings.simplefilter("ignore")
                if dynamo:
                    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples",
                                                                                   min=400)
                    torch.onnx.export(model, (example,), str(tmp), input_names=["signal"],
                                      output_names=["logits"], opset_version=opset,
                                      dynamo=True, external_data=False, verbose=False,
                                      dynamic_shapes={"signal": {0: batch, 1: samples}})
                else:
                    torch.onnx.export(model, (example,), str(tmp), input_names=["signal"],
                                      output_names=["logits"], opset_version=opset,
                                      dynamo=False,
                                      dynamic_axes={"signal": {0: "batch", 1: "samples"},
                                                    "logits": {0: "batch"}})
            break
        except Exception as error:  # noqa: BLE001 - fall back to the other exporter
            errors.append(f"{'dynamo' if dynamo else 'torchscript'}: "
                          f"{str(error).splitlines()[0] if str(error) else type(error).__name__}")
            tmp.unlink(missing_ok=True)
    else:
        raise TeacherError(f"ONNX export of {spec} failed ({'; '.join(errors)})")
    if int8:
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = out.with_name(f".tmp-int8-{out.name}")
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # "consider pre-processing" is advice, not an error
        try:
            quantize_dynamic(str(tmp), str(quantized), weight_type=QuantType.QInt8,
                             per_channel=True, op_types_to_quantize=["MatMul"])
        finally:
            root.setLevel(level)
        tmp.unlink(missing_ok=True)
        tmp = quantized
    _stamp_metadata(tmp, teacher, exporter="dynamo" if not errors else "torchscript",
                    precision="int8" if int8 else "fp32")
    tmp.replace(out)
    return out


class _SignalToLogits:
    def __new__(cls, model):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, signal: torch.Tensor) -> torch.Tensor:
                return self.model(signal)

        return Wrapper()


def _stamp_metadata(path: Path, teacher: Teacher, *, exporter: str, precision: str) -> None:
    import onnx

    model = onnx.load(str(path))
    meta = {"ser_teacher_id": teacher.teacher_id, "ser_teacher_sha256": teacher.sha256,
            "ser_name": teacher.name, "ser_license": teacher.license or "",
            "ser_random": json.dumps(teacher.is_random), "ser_exporter": exporter,
            "ser_precision": precision,
            "ser_labels": "arousal,dominance,valence"}
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


class OnnxTeacher(Teacher):
    """An exported teacher on ONNX Runtime (CPU, or CUDA when its provider is present)."""

    equal_length_batches = True

    def __init__(self, path: str | Path, *, device: str = "cpu",
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path).expanduser()
        if not path.is_file():
            raise TeacherError(f"no ONNX file at {path}: export one with 'ser teacher export "
                               "--teacher hf:FOLDER --out model.onnx'")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise TeacherError("onnx teacher on CUDA needs onnxruntime-gpu; install it or "
                                   "use --device cpu")
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types
            raise TeacherError(f"{path} is not a loadable ONNX model: "
                               f"{str(error).splitlines()[0]}") from None
        names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if names != ["signal"] or "logits" not in outputs:
            raise TeacherError(f"{path} is not an exported teacher (inputs {names}, outputs "
                               f"{outputs}; expected signal -> logits): use 'ser teacher export'")
        meta = self.session.get_modelmeta().custom_metadata_map
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        self.sha256 = digest
        self.name = meta.get("ser_name") or path.stem
        self.precision = meta.get("ser_precision") or "fp32"
        if "onnx" not in self.name:
            self.name = f"{self.name}-onnx" + ("-int8" if self.precision == "int8" else "")
        self.license = meta.get("ser_license") or None
        self.is_random = meta.get("ser_random") == "true"
        self.source_teacher_id = meta.get("ser_teacher_id")
        self.teacher_id = make_teacher_id(self.name, digest, is_random=self.is_random)
        self.device = device
        self._lock = threading.Lock()

    def info(self) -> dict:
        return {**super().info(), "source_teacher_id": self.source_teacher_id,
                "precision": self.precision}

    def _run_batch(self, signals: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(signals).astype(np.float32, copy=False)
        with self._lock:
            (logits,) = self.session.run(["logits"], {"signal": batch})
        return logits.astype(np.float64)
