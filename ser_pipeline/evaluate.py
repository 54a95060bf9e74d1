"""Evaluate a student (a training run or an ONNX file) with CCC, Pearson r and MAE.

What it does, in order:

1. **Pick the clips.** For every corpus evaluated, the clips of the requested splits
   (default ``dev`` and ``test``) come from the ``splits`` table. A corpus with no rows in
   ``splits`` is evaluated whole, under the split name ``all``. Corpora default to the run's
   training corpora (``run.json``), else every corpus in ``splits``.
2. **Predict, streaming.** Clips missing a prediction for this model are sharded, each
   shard's audio is read with :meth:`Lake.audio_for` (never the whole audio table), long
   clips are cut into windows (:mod:`ser_pipeline.windows`, the same windows labeling
   uses) and the window outputs averaged by duration. Each shard's predictions land in
   ``predictions/`` as one part. Predictions already there for the same model are reused,
   so an interrupted evaluation resumes and a repeated one predicts nothing.
3. **Score.** Against each teacher's labels (the run's teacher, the ``teacher_id``
   given, or every teacher that labeled the clips) and against ``human_labels`` wherever
   they exist: one ``metrics`` row per (model, teacher, corpus, split, reference,
   dimension). Each (model, corpus, split, reference, teacher) group is one part whose key
   hashes the model identity and the exact data scored (clip ids, predictions, reference
   values), so evaluating the same model on the same data again writes nothing.

A clip that cannot be decoded or that the model rejects is quarantined (``stage`` =
``evaluate``) and left out of the scores; if the model fails on *every* clip, that is a
model problem and :class:`EvaluateError` is raised instead.

Examples:
    >>> import tempfile
    >>> from ser_pipeline.lake import Lake
    >>> evaluate(Lake.open(tempfile.mkdtemp()), model="missing.onnx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ser_pipeline.evaluate.EvaluateError: ONNX model missing.onnx does not exist...
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.dataset as ds

from ser_pipeline.audio import decode_flac
from ser_pipeline.config import Settings, get_settings
from ser_pipeline.executor import chunked, map_shards
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.metrics import dimension_metrics
from ser_pipeline.schemas import LABELS
from ser_pipeline.windows import weighted_average, window_bounds

#: Shortest input every student accepts (``ser_pipeline.students.MIN_SAMPLES``); shorter
#: clips are zero-padded to it, as ``students.collate`` does in training.
MIN_SAMPLES = 1024
#: Split label used for a corpus evaluated whole because it has no ``splits`` rows.
WHOLE_CORPUS_SPLIT = "all"


class EvaluateError(RuntimeError):
    """The evaluation cannot run; the message names the model/corpus and the fix."""


# -- models -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelIdentity:
    """What a ``metrics`` row says about the model, and the key that identifies it.

    ``model_key`` hashes the weights (checkpoint or ONNX bytes) and, once
    :func:`evaluate` adds them, the windowing options: two evaluations share predictions
    exactly when their keys match.
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


class Predictor(Protocol):
    """Anything that maps 16 kHz float32 signals to ``[n, 3]`` A/D/V predictions."""

    identity: ModelIdentity

    def predict(self, signals: list[np.ndarray]) -> np.ndarray:
        """Predictions ``float64 [len(signals), 3]`` in arousal, dominance, valence order."""
        ...


def _equal_length_batches(signals: Sequence[np.ndarray], batch_size: int) -> list[list[int]]:
    """Indices grouped by signal length, at most ``batch_size`` per group.

    Students normalise each row on its own but would still *see* zero padding, so clips
    are only batched with clips of the same length (all full windows of long audio are).
    """
    by_length: dict[int, list[int]] = {}
    for index, signal in enumerate(signals):
        by_length.setdefault(int(signal.shape[0]), []).append(index)
    return [group[start:start + batch_size] for group in by_length.values()
            for start in range(0, len(group), batch_size)]


def _run_batched(run_batch: Callable[[np.ndarray], np.ndarray], signals: list[np.ndarray],
                 batch_size: int) -> np.ndarray:
    out = np.full((len(signals), len(LABELS)), np.nan)
    for group in _equal_length_batches(signals, batch_size):
        batch = np.stack([signals[i] for i in group]).astype(np.float32, copy=False)
        result = np.asarray(run_batch(batch), dtype=np.float64)
        if result.shape != (len(group), len(LABELS)):
            raise EvaluateError(
                f"model returned shape {result.shape} for a batch of {len(group)}; "
                f"expected [{len(group)}, {len(LABELS)}] (arousal, dominance, valence)"
            )
        out[group] = result
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TorchPredictor:
    """A ``torch.nn.Module`` student (e.g. from :func:`ser_pipeline.runs.load_run_model`)."""

    def __init__(self, model: Any, identity: ModelIdentity, *, batch_size: int = 16) -> None:
        self.model = model.eval()
        self.identity = identity
        self.batch_size = batch_size

    @classmethod
    def from_run(cls, lake: Lake, run_id: str, *, batch_size: int = 16) -> TorchPredictor:
        """Load a run's best checkpoint; its ``run.json`` supplies teacher and corpora."""
        from ser_pipeline.runs import load_run_model

        model, meta = load_run_model(lake, run_id)
        weights = lake.storage.read_bytes(meta["best_checkpoint"])
        options = meta.get("student_options") or {}
        identity = ModelIdentity(
            model=run_id,
            model_key=content_key("torch", meta["student"], json.dumps(options, sort_keys=True),
                                  _sha256(weights)),
            model_format="torch",
            run_id=run_id,
            student=meta["student"],
            teacher_id=meta.get("teacher_id"),
            teacher_sha256=meta.get("teacher_sha256"),
            params=int(sum(p.numel() for p in model.parameters())),
            size_bytes=len(weights),
            corpora=list(meta.get("corpora") or []),
            split_name=meta.get("split_name"),
        )
        return cls(model, identity, batch_size=batch_size)

    def predict(self, signals: list[np.ndarray]) -> np.ndarray:
        import torch

        def run_batch(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return self.model(torch.from_numpy(batch)).double().numpy()

        return _run_batched(run_batch, signals, self.batch_size)


class OnnxPredictor:
    """An ONNX student run by ONNX Runtime: input ``signal`` ``float32 [batch, samples]``,
    output ``logits`` ``[batch, 3]`` (a single input/output under other names also works).

    Teacher, student and run come from the model's metadata properties (``teacher_id``,
    ``teacher_sha256``, ``student``, ``run_id``, ``name``, ``version``) and from a
    ``manifest.json`` next to the file, when present.
    """

    def __init__(self, path: str | Path, *, batch_size: int = 16, name: str | None = None,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if path.is_dir():
            path = path / "model.onnx"
        if not path.is_file():
            raise EvaluateError(
                f"ONNX model {path} does not exist; pass a .onnx file, a folder holding "
                "model.onnx, or registry://name[@version]"
            )
        data = path.read_bytes()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(data, sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise EvaluateError(f"{path} is not a loadable ONNX model: {error}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name = _pick_io([i.name for i in inputs], "signal", path, "input")
        self.output_name = _pick_io([o.name for o in outputs], "logits", path, "output")
        shape = next(i.shape for i in inputs if i.name == self.input_name)
        if len(shape) != 2:
            raise EvaluateError(f"{path}: input {self.input_name!r} has shape {shape}; "
                                "expected [batch, samples]")
        fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        if isinstance(shape[1], int) and shape[1] > 0:
            raise EvaluateError(f"{path}: input length is fixed at {shape[1]} samples; export "
                                "the model with a dynamic time axis")
        self.batch_size = min(batch_size, fixed_batch) if fixed_batch else batch_size
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        manifest_path = path.parent / "manifest.json"
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text())
                meta.update({k: v for k, v in manifest.items() if isinstance(v, (str, int))})
            except (OSError, ValueError):
                pass  # the manifest is a convenience; the model itself is authoritative
        display = name or (f"{meta['name']}@{meta['version']}"
                           if meta.get("name") and meta.get("version") else path.name)
        self.identity = ModelIdentity(
            model=str(display),
            model_key=content_key("onnx", _sha256(data)),
            model_format="onnx",
            run_id=_str_or_none(meta.get("run_id")),
            student=_str_or_none(meta.get("student")),
            teacher_id=_str_or_none(meta.get("teacher_id")),
            teacher_sha256=_str_or_none(meta.get("teacher_sha256")),
            params=_int_or_none(meta.get("params")) or _onnx_parameter_count(data),
            size_bytes=len(data),
        )

    def predict(self, signals: list[np.ndarray]) -> np.ndarray:
        def run_batch(batch: np.ndarray) -> np.ndarray:
            return self.session.run([self.output_name], {self.input_name: batch})[0]

        return _run_batched(run_batch, signals, self.batch_size)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _pick_io(names: list[str], preferred: str, path: Path, what: str) -> str:
    if preferred in names:
        return preferred
    if len(names) == 1:
        return names[0]
    raise EvaluateError(f"{path}: cannot tell which {what} to use among {names}; "
                        f"name it {preferred!r}")


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
                   batch_size: int = 16, settings: Settings | None = None) -> Predictor:
    """A predictor for a run id, a local ONNX path or a ``registry://name[@version]`` URI."""
    if (run_id is None) == (model is None):
        raise EvaluateError("give exactly one of a run id (--run) or a model (--model)")
    if run_id is not None:
        return TorchPredictor.from_run(lake, run_id, batch_size=batch_size)
    assert model is not None
    if model.startswith("registry://"):
        from ser_pipeline.registry import resolve_model_uri

        path = resolve_model_uri(model, settings=settings or get_settings())
        predictor = OnnxPredictor(path, batch_size=batch_size)
        if predictor.identity.model == Path(path).name:  # no manifest name: keep the URI
            predictor.identity = replace(predictor.identity, model=model)
        return predictor
    return OnnxPredictor(model, batch_size=batch_size)


# -- clip selection -----------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """The clips of one corpus and split that get scored together."""

    corpus: str
    split: str
    split_name: str | None
    audio_ids: tuple[str, ...]


def select_clips(lake: Lake, *, corpora: Sequence[str], splits: Sequence[str],
                 split_name: str | None = None) -> tuple[list[Selection], list[str]]:
    """The clips to evaluate per (corpus, split), plus notices about empty selections.

    A corpus with rows in ``splits`` contributes its ``splits`` clips (one split
    definition: ``split_name``, or the corpus's only one); a corpus without any is
    evaluated whole as split ``all``.
    """
    known = lake.ids("audio", column="corpus")
    unknown = sorted(set(corpora) - known)
    if unknown:
        raise EvaluateError(
            f"corpus {', '.join(map(repr, unknown))} is not in the lake {lake.url} "
            f"(corpora there: {', '.join(sorted(known)) or 'none; run ser ingest first'})"
        )
    split_rows = lake.read("splits", columns=["audio_id", "corpus", "split", "split_name"],
                           filter=ds.field("corpus").isin(list(corpora))).to_pylist()
    selections, notices = [], []
    for corpus in corpora:
        rows = [r for r in split_rows if r["corpus"] == corpus]
        if not rows:
            ids = lake.ids("audio", filter=ds.field("corpus") == corpus)
            selections.append(Selection(corpus, WHOLE_CORPUS_SPLIT, None, tuple(sorted(ids))))
            notices.append(f"corpus {corpus!r} has no rows in 'splits': evaluated whole "
                           f"({len(ids)} clips) as split {WHOLE_CORPUS_SPLIT!r}")
            continue
        names = sorted({r["split_name"] for r in rows if r["split_name"]})
        chosen = split_name if split_name in names else (names[0] if len(names) == 1 else None)
        if chosen is None and names:
            raise EvaluateError(
                f"corpus {corpus!r} has several split definitions ({', '.join(names)})"
                + (f" and none is {split_name!r}" if split_name else "")
                + "; choose one with --split-name"
            )
        for split in splits:
            ids = sorted({r["audio_id"] for r in rows
                          if r["split"] == split and (chosen is None or r["split_name"] == chosen)})
            if ids:
                selections.append(Selection(corpus, split, chosen, tuple(ids)))
            else:
                notices.append(f"corpus {corpus!r} has no {split!r} clips in split "
                               f"{chosen!r}: skipped")
    return selections, notices


# -- prediction ---------------------------------------------------------------------------
def _predict_clip_windows(predictor: Predictor, signals: list[np.ndarray], *,
                          window_s: float, overlap_s: float) -> list[tuple[np.ndarray, int]]:
    """Per clip: the duration-weighted window average and the number of windows."""
    windows, owners, bounds_per_clip = [], [], []
    for clip, signal in enumerate(signals):
        bounds = window_bounds(signal.shape[0], window_s=window_s, overlap_s=overlap_s)
        bounds_per_clip.append(bounds)
        for start, end in bounds:
            window = signal[start:end]
            if window.shape[0] < MIN_SAMPLES:
                window = np.pad(window, (0, MIN_SAMPLES - window.shape[0]))
            windows.append(window)
            owners.append(clip)
    outputs = predictor.predict(windows)
    owners_arr = np.asarray(owners)
    return [(weighted_average(outputs[owners_arr == clip], bounds), len(bounds))
            for clip, bounds in enumerate(bounds_per_clip)]


def _quarantine_row(audio_id: str, corpus: str | None, reason: str, message: str,
                    source_path: str | None = None) -> dict:
    return {"corpus": corpus, "source_path": source_path, "audio_id": audio_id,
            "stage": "evaluate", "reason": reason, "message": message,
            "quarantined_at": utcnow()}


def predict_shard(lake: Lake, predictor: Predictor, shard: Sequence[tuple[str, str]], *,
                  window_s: float = 10.0, overlap_s: float = 2.0) -> dict:
    """Predict one shard of ``(audio_id, corpus)`` clips and write its ``predictions`` part.

    Returns counts ``{"predicted", "quarantined", "model_errors"}``. A batch that fails is
    retried clip by clip, so one bad clip is quarantined and the others still count.
    """
    identity = predictor.identity
    corpus_of = dict(shard)
    audio = lake.audio_for(corpus_of, columns=["audio_id", "audio", "source_path"])
    signals, ids, sources, quarantine = [], [], {}, []
    for audio_id, blob, source in zip(audio.column("audio_id").to_pylist(),
                                      audio.column("audio").to_pylist(),
                                      audio.column("source_path").to_pylist(), strict=True):
        sources[audio_id] = source
        try:
            signal = decode_flac(blob["bytes"])
        except Exception as error:  # soundfile raises several types for corrupt bytes
            quarantine.append(_quarantine_row(audio_id, corpus_of[audio_id], "decode_error",
                                              str(error), source))
            continue
        if signal.size == 0:
            quarantine.append(_quarantine_row(audio_id, corpus_of[audio_id], "zero_length",
                                              "the stored audio decodes to 0 samples", source))
            continue
        signals.append(signal)
        ids.append(audio_id)
    for audio_id in sorted(set(corpus_of) - set(sources)):
        quarantine.append(_quarantine_row(audio_id, corpus_of[audio_id], "missing_audio",
                                          "listed in 'splits' but absent from 'audio'"))
    try:
        results: list[tuple[np.ndarray, int] | Exception] = list(_predict_clip_windows(
            predictor, signals, window_s=window_s, overlap_s=overlap_s))
    except Exception:  # isolate the clip(s) the model rejects
        results = []
        for signal in signals:
            try:
                results.extend(_predict_clip_windows(predictor, [signal], window_s=window_s,
                                                     overlap_s=overlap_s))
            except Exception as error:
                results.append(error)
    rows, model_errors = [], 0
    now = utcnow()
    for audio_id, result in zip(ids, results, strict=True):
        if isinstance(result, Exception):
            model_errors += 1
            quarantine.append(_quarantine_row(
                audio_id, corpus_of[audio_id], "model_error",
                f"{identity.model}: {type(result).__name__}: {result}", sources[audio_id]))
            continue
        values, n_windows = result
        if not np.isfinite(values).all():
            model_errors += 1
            quarantine.append(_quarantine_row(
                audio_id, corpus_of[audio_id], "non_finite_prediction",
                f"{identity.model} predicted {values.tolist()}", sources[audio_id]))
            continue
        rows.append({"model_key": identity.model_key, "model": identity.model,
                     "run_id": identity.run_id, "audio_id": audio_id,
                     "corpus": corpus_of[audio_id], "arousal": float(values[0]),
                     "dominance": float(values[1]), "valence": float(values[2]),
                     "n_windows": n_windows, "predicted_at": now})
    shard_key = content_key("predictions", identity.model_key, sorted(corpus_of))
    lake.write_part("predictions", rows, key=shard_key)
    lake.write_part("quarantine", quarantine, key=content_key("quarantine-evaluate", shard_key))
    return {"predicted": len(rows), "quarantined": len(quarantine),
            "model_errors": model_errors, "first_error": next(
                (q["message"] for q in quarantine if q["reason"] == "model_error"), None)}


# -- scoring ------------------------------------------------------------------------------
def _latest_by(rows: list[dict], key: Callable[[dict], Any], order: Callable[[dict], Any],
               ) -> dict[Any, dict]:
    """One row per key: the greatest by ``order`` (deterministic on ties)."""
    best: dict[Any, dict] = {}
    for row in rows:
        k = key(row)
        if k not in best or order(row) > order(best[k]):
            best[k] = row
    return best


def _read_predictions(lake: Lake, model_key: str, ids: list[str]) -> dict[str, dict]:
    if not ids:
        return {}
    rows = lake.read(
        "predictions",
        columns=["audio_id", "arousal", "dominance", "valence", "predicted_at"],
        filter=(ds.field("model_key") == model_key) & ds.field("audio_id").isin(ids),
    ).to_pylist()
    # earliest wins: a prediction never changes once scored
    return _latest_by(rows, lambda r: r["audio_id"],
                      lambda r: (-r["predicted_at"].timestamp(), r["arousal"]))


def _references(lake: Lake, ids: list[str], *, teacher_id: str | None,
                teacher_sha256: str | None) -> dict[tuple[str, str | None], dict[str, tuple]]:
    """``{(reference, teacher_id): {audio_id: (a, d, v)}}`` for teacher and human labels."""
    refs: dict[tuple[str, str | None], dict[str, tuple]] = {}
    id_filter = ds.field("audio_id").isin(ids)
    teacher_filter = id_filter if teacher_id is None else (
        id_filter & (ds.field("teacher_id") == teacher_id))
    teacher_rows = lake.read("teacher_labels", columns=["audio_id", "teacher_id", "teacher_sha256",
                                                        *LABELS, "labeled_at"],
                             filter=teacher_filter).to_pylist()
    chosen = _latest_by(teacher_rows, lambda r: (r["teacher_id"], r["audio_id"]),
                        lambda r: (r["teacher_sha256"] == teacher_sha256, r["labeled_at"],
                                   r["teacher_sha256"] or ""))
    for (teacher, audio_id), row in sorted(chosen.items()):
        refs.setdefault(("teacher", teacher), {})[audio_id] = tuple(row[d] for d in LABELS)
    human_rows = lake.read("human_labels", columns=["audio_id", *LABELS, "ingested_at"],
                           filter=id_filter).to_pylist()
    for audio_id, row in sorted(_latest_by(human_rows, lambda r: r["audio_id"],
                                           lambda r: r["ingested_at"]).items()):
        refs.setdefault(("human", teacher_id), {})[audio_id] = tuple(row[d] for d in LABELS)
    return refs


def _nan_to_none(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def score_selection(lake: Lake, identity: ModelIdentity, selection: Selection, *,
                    predictions: dict[str, dict], references: dict, evaluated_at: Any,
                    ) -> tuple[list[dict], int]:
    """Metric rows for one selection and every reference; writes them. Returns
    ``(rows, rows_written)``."""
    all_rows, written = [], 0
    for (reference, teacher), labels in sorted(references.items(),
                                               key=lambda kv: (kv[0][0], kv[0][1] or "")):
        ids = [i for i in selection.audio_ids if i in predictions and i in labels]
        if not ids:
            continue
        pred = np.array([[predictions[i][d] for d in LABELS] for i in ids])
        ref = np.array([labels[i] for i in ids], dtype=np.float64)
        digest = hashlib.sha256()
        for audio_id, p, r in zip(ids, pred.tolist(), ref.tolist(), strict=True):
            digest.update(f"{audio_id}|{p!r}|{r!r}\n".encode())
        eval_id = content_key("metrics", identity.model_key, selection.corpus, selection.split,
                              selection.split_name, reference, teacher, digest.hexdigest())
        rows = []
        for dimension, values in dimension_metrics(pred, ref).items():
            rows.append({
                "eval_id": eval_id, "model": identity.model, "model_key": identity.model_key,
                "model_format": identity.model_format, "run_id": identity.run_id,
                "student": identity.student, "teacher_id": teacher,
                "corpus": selection.corpus, "split": selection.split,
                "split_name": selection.split_name, "reference": reference,
                "dimension": dimension, "ccc": _nan_to_none(values["ccc"]),
                "pearson": _nan_to_none(values["pearson"]), "mae": _nan_to_none(values["mae"]),
                "n": values["n"], "model_params": identity.params,
                "model_bytes": identity.size_bytes, "evaluated_at": evaluated_at,
            })
        written += len(rows) if lake.write_part("metrics", rows, key=eval_id) else 0
        all_rows.extend(rows)
    return all_rows, written


# -- the stage ----------------------------------------------------------------------------
def evaluate(
    lake: Lake,
    *,
    run_id: str | None = None,
    model: str | None = None,
    predictor: Predictor | None = None,
    corpora: Sequence[str] | None = None,
    splits: Sequence[str] = ("dev", "test"),
    split_name: str | None = None,
    teacher_id: str | None = None,
    batch_size: int = 16,
    window_s: float = 10.0,
    overlap_s: float = 2.0,
    executor: Executor | None = None,
    settings: Settings | None = None,
) -> dict:
    """Evaluate one model and write ``predictions`` and ``metrics`` rows to the lake.

    Args:
        lake: The lake holding audio, splits and labels (metrics are written there too).
        run_id: A training run in ``runs/`` (its best checkpoint).
        model: A local ONNX path (or a folder with ``model.onnx``) or
            ``registry://name[@version|latest]``.
        predictor: Instead of ``run_id``/``model``: any :class:`Predictor`.
        corpora: Corpora to evaluate; default the run's training corpora, else every
            corpus with ``splits`` rows.
        splits: Which splits of split corpora to score (corpora without splits: ``all``).
        split_name: Which split definition, when a corpus has several (default: the run's).
        teacher_id: Score against this teacher's labels only (default: the model's teacher,
            else every teacher that labeled the clips).
        batch_size: Equal-length windows per model call.
        window_s: Window length for long clips (seconds).
        overlap_s: Window overlap (seconds).
        executor: Runs the prediction shards (default: a bounded thread pool).
        settings: Settings (shard size, workers, registry); default from the environment.

    Returns:
        A JSON-able summary: model identity, clip counts, rows written and ``results``
        (one entry per corpus/split/reference/teacher with CCC per dimension).

    Raises:
        EvaluateError: Bad model/corpus/split choice, or the model failed on every clip.
    """
    settings = settings or get_settings()
    if predictor is None:
        predictor = load_predictor(lake, run_id=run_id, model=model, batch_size=batch_size,
                                   settings=settings)
    base = predictor.identity
    # predictions depend on the windowing as much as on the weights
    identity = replace(base, model_key=content_key(base.model_key, window_s, overlap_s))
    predictor.identity = identity
    teacher = teacher_id or identity.teacher_id
    if corpora:
        chosen_corpora = list(dict.fromkeys(corpora))
    elif identity.corpora:
        chosen_corpora = list(identity.corpora)
    else:
        chosen_corpora = sorted(lake.ids("splits", column="corpus"))
        if not chosen_corpora:
            raise EvaluateError(
                f"{identity.model} records no training corpora and the lake has no splits; "
                "name the corpora to evaluate with --corpus"
            )
    selections, notices = select_clips(lake, corpora=chosen_corpora, splits=splits,
                                       split_name=split_name or identity.split_name)
    corpus_of = {i: s.corpus for s in selections for i in s.audio_ids}
    all_ids = sorted(corpus_of)
    if not all_ids:
        raise EvaluateError(f"no clips to evaluate in {', '.join(chosen_corpora)} for splits "
                            f"{', '.join(splits)}: " + "; ".join(notices))
    done = set(_read_predictions(lake, identity.model_key, all_ids))
    todo = [(i, corpus_of[i]) for i in all_ids if i not in done]
    shard_results = map_shards(
        lambda shard: predict_shard(lake, predictor, shard, window_s=window_s,
                                    overlap_s=overlap_s),
        chunked(todo, settings.shard_size), executor=executor,
        max_workers=settings.max_workers, description=f"evaluate {identity.model}",
    )
    predicted = sum(r["predicted"] for r in shard_results)
    model_errors = sum(r["model_errors"] for r in shard_results)
    predictions = _read_predictions(lake, identity.model_key, all_ids)
    if todo and not predictions and model_errors:
        first = next(r["first_error"] for r in shard_results if r["first_error"])
        raise EvaluateError(f"the model failed on every clip ({model_errors}); first error: "
                            f"{first}")
    references = _references(lake, all_ids, teacher_id=teacher,
                             teacher_sha256=identity.teacher_sha256)
    if not any(k[0] == "teacher" for k in references):
        notices.append("no teacher labels for these clips"
                       + (f" from teacher {teacher!r}" if teacher else "")
                       + ": only human references scored (run ser label)")
    evaluated_at = utcnow()
    metric_rows, written = [], 0
    for selection in selections:
        rows, count = score_selection(lake, identity, selection, predictions=predictions,
                                      references=references, evaluated_at=evaluated_at)
        metric_rows.extend(rows)
        written += count
    results = _results_table(metric_rows)
    return {
        "model": identity.model, "model_key": identity.model_key,
        "model_format": identity.model_format, "run_id": identity.run_id,
        "student": identity.student, "teacher_id": teacher,
        "model_params": identity.params, "model_bytes": identity.size_bytes,
        "corpora": chosen_corpora,
        "selections": [{"corpus": s.corpus, "split": s.split, "split_name": s.split_name,
                        "clips": len(s.audio_ids)} for s in selections],
        "clips": len(all_ids), "predicted": predicted, "reused_predictions": len(done),
        "quarantined": sum(r["quarantined"] for r in shard_results),
        "metrics_rows_written": written, "metrics_rows": len(metric_rows),
        "results": results, "notices": notices, "lake": lake.url,
        "identity": {k: v for k, v in asdict(identity).items() if k != "corpora"},
    }


def _results_table(metric_rows: list[dict]) -> list[dict]:
    """Wide rows (one per corpus/split/reference/teacher) with CCC per dimension."""
    table: dict[tuple, dict] = {}
    for row in metric_rows:
        key = (row["corpus"], row["split"], row["reference"], row["teacher_id"])
        entry = table.setdefault(key, {"corpus": key[0], "split": key[1], "reference": key[2],
                                       "teacher_id": key[3], "n": row["n"]})
        entry[f"ccc_{row['dimension']}"] = row["ccc"]
        entry["n"] = max(entry["n"], row["n"])
    for entry in table.values():
        values = [entry.get(f"ccc_{d}") for d in LABELS]
        finite = [v for v in values if v is not None]
        entry["ccc_mean"] = float(np.mean(finite)) if len(finite) == len(LABELS) else None
    return list(table.values())
