"""What evaluation runs: a training run's torch student or an ONNX student file.

A :class:`Predictor` maps a batch of equal-length windows to A/D/V; evaluation applies it
to each clip with the student runner's clip rule
(:func:`ser_pipeline.onnx_model.predict_clip`: windows, padding to ``min_samples``,
duration-weighted average), the same function ``ser predict`` uses. An ONNX student is run
by the project's one runner, :class:`~ser_pipeline.onnx_model.OnnxModel`, so ``ser
evaluate --model`` stores exactly what ``ser predict`` prints for the same file and clip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.evaluate.errors import EvaluateError
from ser_pipeline.hashing import sha256_bytes
from ser_pipeline.lake import Lake, content_key
from ser_pipeline.onnx_model import BATCH_SIZE, DEFAULT_THREADS, OnnxModel, OnnxModelError


@dataclass(frozen=True)
class ModelIdentity:
    """What a ``metrics`` row says about the model, and the key that identifies it.

    ``model_key`` hashes the weights (checkpoint or ONNX bytes) and, once
    :func:`~ser_pipeline.evaluate.evaluate` adds them, the windowing options: two
    evaluations share predictions exactly when their keys match.
    """

    model: str
    model_key: str
    model_format: str  # torch | onnx
    run_id: str | None = None
    student: str | None = None
    teacher_id: str | None = None
    teacher_sha256: str | None = None
    params: int | None = None
    size_bytes: int | None = None
    corpora: list[str] = field(default_factory=list)
    split_name: str | None = None
    #: ``(window_s, overlap_s)`` once ``model_key`` includes the windowing (set by
    #: :func:`~ser_pipeline.evaluate.stage.windowed`), else None.
    windows: tuple[float, float] | None = None


class Predictor(Protocol):
    """Anything that maps a batch of equal-length 16 kHz windows to A/D/V.

    ``min_samples``: shorter windows are zero-padded to it before ``predict``;
    ``batch_size``: most windows per call.
    """

    identity: ModelIdentity
    min_samples: int
    batch_size: int

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``float32 [n, samples]`` -> ``[n, 3]`` in arousal, dominance, valence order."""
        ...


class TorchPredictor:
    """A ``torch.nn.Module`` student (e.g. from :func:`ser_pipeline.runs.load_run_model`)."""

    def __init__(self, model: Any, identity: ModelIdentity, *,
                 batch_size: int = BATCH_SIZE) -> None:
        from ser_pipeline.students import MIN_SAMPLES

        self.model = model.eval()
        self.identity = identity
        self.batch_size = batch_size
        self.min_samples = MIN_SAMPLES

    @classmethod
    def from_run(cls, lake: Lake, run_id: str, *,
                 batch_size: int = BATCH_SIZE) -> TorchPredictor:
        """Load a run's best checkpoint; its ``run.json`` supplies teacher and corpora."""
        from ser_pipeline.runs import load_run_model

        model, run = load_run_model(lake, run_id)
        weights = lake.storage.read_bytes(run.best_checkpoint)
        identity = ModelIdentity(
            model=run_id,
            model_key=content_key("torch", run.student,
                                  json.dumps(run.student_options, sort_keys=True),
                                  sha256_bytes(weights)),
            model_format="torch",
            run_id=run_id,
            student=run.student,
            teacher_id=run.teacher_id,
            teacher_sha256=run.teacher_sha256,
            params=int(sum(p.numel() for p in model.parameters())),
            size_bytes=len(weights),
            corpora=list(run.corpora or []),
            split_name=run.split_name,
        )
        return cls(model, identity, batch_size=batch_size)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(np.asarray(batch, np.float32))).double().numpy()


class OnnxPredictor:
    """An ONNX student file, run by :class:`~ser_pipeline.onnx_model.OnnxModel`.

    Teacher, student and run come from the file's metadata (``teacher_id``,
    ``teacher_sha256``, ``student``, ``run_id``); name, version and parameter count from a
    ``manifest.json`` next to the file, when there is one.
    """

    def __init__(self, path: str | Path, *, batch_size: int = BATCH_SIZE,
                 name: str | None = None, threads: int = DEFAULT_THREADS) -> None:
        from ser_pipeline.registry import manifest_next_to

        path = Path(path)
        if not path.is_file():
            raise EvaluateError(
                f"ONNX model {path} does not exist; pass a .onnx file, a folder holding "
                "model.onnx, or registry://name[@version]"
            )
        data = path.read_bytes()
        try:
            self.model = OnnxModel(path, threads=threads, batch_size=batch_size)
        except OnnxModelError as error:
            raise EvaluateError(str(error)) from None
        self.min_samples = self.model.min_samples
        self.batch_size = self.model.batch_size
        meta = self.model.metadata
        manifest = manifest_next_to(path)
        provenance = manifest.provenance if manifest is not None else None
        display = name or (f"{manifest.name}@{manifest.version}" if manifest is not None
                           else path.name)

        def fact(key: str) -> str | None:
            value = meta.get(key) or (getattr(provenance, key, None) if provenance else None)
            return None if value in (None, "", "None") else str(value)

        self.identity = ModelIdentity(
            model=display,
            model_key=content_key("onnx", sha256_bytes(data)),
            model_format="onnx",
            run_id=fact("run_id"), student=fact("student"), teacher_id=fact("teacher_id"),
            teacher_sha256=fact("teacher_sha256"),
            params=(manifest.params if manifest is not None and manifest.params else None)
            or _onnx_parameter_count(data),
            size_bytes=len(data),
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.model.run(batch)


def _onnx_parameter_count(data: bytes) -> int | None:
    """Weights in the graph: initializer elements, leaving out scalars and int32/int64
    tensors (constants and shapes the exporter folds in). Exact for plain exports;
    quantised graphs count their int8 weights once (scales/zero points are scalars)."""
    import onnx

    model = onnx.load_from_string(data)
    skip = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    return int(sum(int(np.prod(t.dims)) for t in model.graph.initializer
                   if t.dims and int(np.prod(t.dims)) > 1 and t.data_type not in skip))


def load_predictor(lake: Lake, *, run_id: str | None = None, model: str | None = None,
                   batch_size: int = BATCH_SIZE, threads: int = DEFAULT_THREADS,
                   settings: Settings | None = None) -> Predictor:
    """A predictor for a run id, a local ONNX file or folder, or ``registry://`` URI.

    Folders and registry URIs resolve as ``ser predict`` resolves them
    (:func:`ser_pipeline.registry.resolve_model`): the file the manifest serves by
    default unless ``#int8``/``#fp32`` says otherwise.
    """
    if (run_id is None) == (model is None):
        raise EvaluateError("give exactly one of a run id (--run) or a model (--model)")
    if run_id is not None:
        return TorchPredictor.from_run(lake, run_id, batch_size=batch_size)
    assert model is not None
    if model.startswith("registry://") or Path(model.partition("#")[0]).is_dir():
        from ser_pipeline.registry import resolve_model_uri

        path = resolve_model_uri(model, settings=settings or get_settings())
        predictor = OnnxPredictor(path, batch_size=batch_size, threads=threads)
        if model.startswith("registry://") and predictor.identity.model == Path(path).name:
            predictor.identity = replace(predictor.identity, model=model)  # no manifest name
        return predictor
    return OnnxPredictor(model, batch_size=batch_size, threads=threads)
