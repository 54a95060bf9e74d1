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
import logging
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_pipeline.quantize import TEACHER_RECIPE, cpu_info, quantize, saturation_risks
from ser_pipeline.schemas import LABELS, SAMPLE_RATE
from ser_pipeline.teacher.core import Teacher, TeacherError, make_teacher_id
from ser_pipeline.teacher.torch_teacher import load_hf_teacher

log = logging.getLogger(__name__)
#: The int8 teacher labels only when CCC(int8, fp32) reaches this on every dimension.
INT8_FIDELITY_MIN = 0.99


def export_teacher_onnx(spec_or_path: str, out: str | Path, *, opset: int = 18,
                        int8: bool = False,
                        fidelity_signals: Sequence[np.ndarray] | None = None) -> Path:
    """Export an ``hf:`` teacher (or a model folder) to one ONNX file.

    The dynamo exporter is tried first; if it fails, the TorchScript exporter
    (``dynamo=False``) is used. The teacher's id, sha256, licence and random flag travel in
    the file's metadata, so labels from the ONNX teacher keep their provenance.

    With ``int8=True`` the transformer's MatMul weights are quantised dynamically
    (:data:`~ser_pipeline.quantize.TEACHER_RECIPE`: u8 weights, per channel, exact on every
    CPU). ``out`` is then the int8 model, and the fp32 model is kept beside it as
    ``<out stem>.fp32.onnx``: fidelity CCC(int8, fp32) is measured on
    ``fidelity_signals`` (default: :func:`fidelity_clips`) and recorded in the metadata
    with the recipe and the measuring CPU. :class:`OnnxTeacher` serves that fp32 file
    instead, with a warning, when the recorded fidelity is below
    :data:`INT8_FIDELITY_MIN` or the graph can saturate (:mod:`ser_pipeline.quantize`).

    Returns:
        The path of the written ``.onnx`` file.
    """
    import torch

    out = Path(out)
    if out.suffix != ".onnx":
        raise TeacherError(f"--out {out} must end in .onnx")
    kind, _, target = str(spec_or_path).partition(":")
    if kind not in ("hf", "onnx", "ensemble") or not target:
        kind, target = "hf", str(spec_or_path)  # a bare model folder
    if kind != "hf":
        raise TeacherError(f"only hf: teachers can be exported to ONNX, got {spec_or_path!r} "
                           "(export each ensemble member separately and use "
                           "ensemble:onnx:a,onnx:b)")
    teacher = load_hf_teacher(target, device="cpu", precision="fp32")
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
        raise TeacherError(f"ONNX export of {spec_or_path} failed ({'; '.join(errors)})")
    exporter = "dynamo" if not errors else "torchscript"
    if not int8:
        _stamp_metadata(tmp, teacher, exporter=exporter, precision="fp32")
        tmp.replace(out)
        return out
    fp32 = fp32_sibling(out)
    _stamp_metadata(tmp, teacher, exporter=exporter, precision="fp32")
    tmp.replace(fp32)
    quantized = out.with_name(f".tmp-int8-{out.name}")
    quantize(TEACHER_RECIPE, fp32, quantized)
    risks = saturation_risks(quantized)
    signals = list(fidelity_signals) if fidelity_signals is not None else fidelity_clips()
    fidelity = int8_fidelity(quantized, fp32, signals)
    extra = {"ser_int8_recipe": json.dumps(TEACHER_RECIPE.to_dict()),
             "ser_int8_ccc_vs_fp32": json.dumps(fidelity),
             "ser_int8_fidelity_clips": str(len(signals)),
             "ser_int8_saturation_risks": str(len(risks)),
             "ser_int8_machine": cpu_info().model_dump_json(),
             "ser_fp32_file": fp32.name, "ser_fp32_sha256": _sha256(fp32)}
    _stamp_metadata(quantized, teacher, exporter=exporter, precision="int8", extra=extra)
    quantized.replace(out)
    if min(fidelity.values()) < INT8_FIDELITY_MIN or risks:
        log.warning("int8 teacher %s: CCC(int8, fp32) %s (need >= %s), %d saturation risks; "
                    "labeling will use %s instead", out, _fmt(fidelity), INT8_FIDELITY_MIN,
                    len(risks), fp32)
    return out


def fp32_sibling(int8_path: str | Path) -> Path:
    """Where the fp32 model of an int8 teacher export lives: ``<stem>.fp32.onnx``."""
    path = Path(int8_path)
    return path.with_name(f"{path.stem}.fp32.onnx")


def fidelity_clips(n: int = 24, *, seed: int = 0) -> list[np.ndarray]:
    """Speech-like test signals when no lake clips are given: voiced harmonics on a moving
    pitch, syllable-rate loudness, breath noise and pauses, 1.5-6 s at 16 kHz.

    The teacher's A/D/V responses to these vary from clip to clip, which is what a CCC
    between int8 and fp32 outputs needs; real clips (``--lake``) are better still.
    """
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n):
        seconds = float(rng.uniform(1.5, 6.0))
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = rng.uniform(90, 260) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        voiced = sum(np.sin(k * phase) / k ** rng.uniform(0.8, 1.6) for k in range(1, 12))
        syllables = np.clip(np.sin(2 * np.pi * rng.uniform(2, 6) * t), 0, None) ** 2
        signal = rng.uniform(0.05, 0.5) * syllables * voiced
        signal += rng.uniform(0.001, 0.05) * rng.standard_normal(t.size)
        clips.append(signal.astype(np.float32))
    return clips


def int8_fidelity(int8_path: str | Path, fp32_path: str | Path,
                  signals: Sequence[np.ndarray]) -> dict[str, float]:
    """CCC(int8, fp32) per dimension (audmetric) of two teacher files on ``signals``."""
    import audmetric

    if len(signals) < 2:
        raise TeacherError(f"int8 fidelity needs at least 2 clips, got {len(signals)}")
    outputs = [OnnxTeacher(path, checked=False).predict(signals)
               for path in (int8_path, fp32_path)]
    result = {}
    for index, label in enumerate(LABELS):
        value = float(audmetric.concordance_cc(outputs[1][:, index], outputs[0][:, index]))
        result[label] = round(value, 5) if np.isfinite(value) else 0.0
    return result


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{label[0].upper()} {value:.4f}" for label, value in values.items())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


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


def _stamp_metadata(path: Path, teacher: Teacher, *, exporter: str, precision: str,
                    extra: dict[str, str] | None = None) -> None:
    import onnx

    model = onnx.load(str(path))
    meta = {"ser_teacher_id": teacher.teacher_id, "ser_teacher_sha256": teacher.sha256,
            "ser_name": teacher.name, "ser_license": teacher.license or "",
            "ser_random": json.dumps(teacher.is_random), "ser_exporter": exporter,
            "ser_precision": precision,
            "ser_labels": "arousal,dominance,valence", **(extra or {})}
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


class OnnxTeacher(Teacher):
    """An exported teacher on ONNX Runtime (CPU, or CUDA when its provider is present).

    An int8 file is only used when it is right on every CPU: no integer product that can
    saturate (:func:`~ser_pipeline.quantize.saturation_risks`) and a recorded CCC(int8,
    fp32) >= :data:`INT8_FIDELITY_MIN` on every dimension. Otherwise the fp32 file exported
    beside it is loaded instead, with a warning, and :attr:`int8_fallback` says why.
    """

    equal_length_batches = True

    def __init__(self, path: str | Path, *, device: str = "cpu",
                 threads: int | None = None, checked: bool = True) -> None:
        path = Path(path).expanduser()
        self.int8_fallback: str | None = None
        meta = self._open(path, device=device, threads=threads)
        if checked and self.precision == "int8":
            problem = _int8_problem(path, meta)
            if problem:
                fp32 = path.with_name(meta.get("ser_fp32_file") or fp32_sibling(path).name)
                if not fp32.is_file() or _sha256(fp32) != meta.get("ser_fp32_sha256", ""):
                    raise TeacherError(f"{path}: {problem}, and its fp32 model {fp32} is "
                                       "missing or changed; re-export with 'ser teacher "
                                       "export --int8' or use the fp32 file")
                log.warning("%s: %s; labeling with the fp32 model %s instead", path, problem,
                            fp32)
                self._open(fp32, device=device, threads=threads)
                self.int8_fallback = problem

    def _open(self, path: Path, *, device: str, threads: int | None) -> dict[str, str]:
        import onnxruntime as ort

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
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.sha256 = _sha256(path)
        self.path = path
        self.name = meta.get("ser_name") or path.stem
        self.precision = meta.get("ser_precision") or "fp32"
        if "onnx" not in self.name:
            self.name = f"{self.name}-onnx" + ("-int8" if self.precision == "int8" else "")
        self.license = meta.get("ser_license") or None
        self.is_random = meta.get("ser_random") == "true"
        self.source_teacher_id = meta.get("ser_teacher_id")
        self.teacher_id = make_teacher_id(self.name, self.sha256, is_random=self.is_random)
        self.int8_ccc = json.loads(meta["ser_int8_ccc_vs_fp32"]) \
            if "ser_int8_ccc_vs_fp32" in meta else None
        self.device = device
        self._lock = threading.Lock()
        return meta

    def info(self) -> dict:
        return {**super().info(), "source_teacher_id": self.source_teacher_id,
                "precision": self.precision, "int8_ccc_vs_fp32": self.int8_ccc,
                "int8_fallback": self.int8_fallback}

    def _run_batch(self, signals: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(signals).astype(np.float32, copy=False)
        with self._lock:
            (logits,) = self.session.run(["logits"], {"signal": batch})
        return logits.astype(np.float64)


def _int8_problem(path: Path, meta: dict[str, str]) -> str | None:
    """Why an int8 teacher file must not label, or ``None`` when it may."""
    risks = saturation_risks(path)
    if risks:
        return (f"int8 model has {len(risks)} integer products that saturate on CPUs "
                f"without VNNI (e.g. {risks[0]['node']}: {risks[0]['why']})")
    if "ser_int8_ccc_vs_fp32" not in meta:
        return "int8 model records no fidelity against fp32 (exported by an older version)"
    fidelity = json.loads(meta["ser_int8_ccc_vs_fp32"])
    low = {label: value for label, value in fidelity.items() if value < INT8_FIDELITY_MIN}
    if low:
        return f"int8 fidelity CCC(int8, fp32) {_fmt(low)} < {INT8_FIDELITY_MIN}"
    return None
