"""Export a trained student to ONNX (fp32 + int8), check parity, measure it.

The exported graph takes ``signal`` (float32 ``[batch, samples]``, 16 kHz, dynamic batch
and length) and returns ``logits`` (``[batch, 3]``: arousal, dominance, valence), the
audEERING teacher's naming. The log-mel front end is a conv DFT inside the graph, so the
model eats raw waveforms and no STFT op has to export.

int8: static quantisation of the conv stack, calibrated on lake clips, with only the
type choices that cannot saturate on any CPU (:mod:`ser_pipeline.quantize`); each
candidate is checked by that rule, then by parity, and the fastest passing one on this
machine ships. Every candidate's recipe, size, parity and latency stay in the result.

Parity, checked before anything can be published: on dev clips, CCC(ONNX fp32, torch)
>= 0.999 for every dimension, otherwise :class:`ParityError`; and CCC(int8, fp32) >= 0.98,
otherwise the int8 file is withheld (``int8.withheld``) and the model ships as fp32 only.

``metadata_props`` of both files: ``labels``, ``sample_rate``, ``teacher_id``,
``teacher_sha256``, ``student``, ``run_id``, ``min_samples``, ``quantization`` and
``manifest_hash``: the sha256 of the canonical JSON (sorted keys, no spaces) of the
manifest's ``provenance`` section (run, student, teacher, lake snapshot, git sha,
checkpoint sha, labels, sample rate, I/O names). The registry writes that section
verbatim into ``manifest.json``, so a model file can be matched to its manifest without
the circularity of hashing a manifest that lists the file's own sha.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_pipeline.lake import Lake
from ser_pipeline.onnx_model import MIN_SAMPLES, OnnxModel, cpu_peak_gflops, measure
from ser_pipeline.quantize import (
    STUDENT_RECIPES,
    Int8Recipe,
    cpu_info,
    latency_ms,
    quantize,
    saturation_risks,
)
from ser_pipeline.schemas import LABELS, SAMPLE_RATE

log = logging.getLogger(__name__)

INPUT_NAME = "signal"
OUTPUT_NAME = "logits"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TORCH_PARITY_MIN = 0.999
INT8_PARITY_MIN = 0.98
#: Calibration and parity clips are cropped to this length (keeps export fast; the
#: statistics of a 6 s crop are those of the clip).
MAX_CLIP_S = 6.0
#: The paper's figures for Wav2Small on one core (int8 bytes, ms per 5 s clip, MB RAM).
WAV2SMALL_TARGETS = {"int8_bytes": 120_000, "latency_ms": 9.0, "peak_rss_increase_mb": 9.0}

#: Teachers whose weights restrict the use of anything distilled from them.
_RESTRICTIVE_LICENSES = {
    "cc-by-nc-sa-4.0": "non-commercial use only, and derivatives must share alike "
                       "(inherited from the audEERING teacher's weights)",
}


class ExportError(RuntimeError):
    """The model could not be exported or quantised; the message names the step."""


class ParityError(ExportError):
    """ONNX outputs disagree with torch (or int8 with fp32); ``parity`` holds the numbers."""

    def __init__(self, message: str, parity: dict) -> None:
        super().__init__(message)
        self.parity = parity


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_hash(section: dict) -> str:
    """sha256 of ``section`` as canonical JSON: how ``manifest_hash`` is defined."""
    text = json.dumps(section, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def teacher_license(teacher_id: str | None) -> dict:
    """Licence of a teacher's weights, inherited by every student distilled from it.

    The audEERING dimensional models (and ensembles built on them) are cc-by-nc-sa-4.0.
    An unknown teacher gives ``"unknown"`` and a warning: publishing should not pretend
    a licence it cannot vouch for.
    """
    try:  # the teacher module may know licences of teachers it adds later
        from ser_pipeline import teacher as teacher_module

        lookup = getattr(teacher_module, "teacher_license", None)
        if callable(lookup) and teacher_id:
            found = lookup(teacher_id)
            if isinstance(found, str) and found:
                return _license_record(found, teacher_id)
    except ImportError:
        pass
    lowered = (teacher_id or "").lower()
    if "audeering" in lowered or "w2v2-l-robust" in lowered or "wavlm-large" in lowered:
        return _license_record("cc-by-nc-sa-4.0", teacher_id)
    warning = (f"licence of teacher {teacher_id!r} is unknown: check the teacher weights' "
               "licence before distributing this model")
    warnings.warn(warning, stacklevel=2)
    return {"id": "unknown", "source": f"teacher {teacher_id}", "restricts_use": None,
            "warning": warning}


def _license_record(license_id: str, teacher_id: str | None) -> dict:
    restriction = _RESTRICTIVE_LICENSES.get(license_id.lower())
    return {"id": license_id, "source": f"teacher {teacher_id}",
            "restricts_use": restriction is not None,
            "warning": f"{license_id}: {restriction}" if restriction else None}


# -- torch -> ONNX ---------------------------------------------------------------------------

def export_fp32(model, path: str | Path, *, metadata: dict[str, str]) -> None:
    """Export ``model`` ([batch, samples] -> [batch, 3]) to a single-file ONNX graph."""
    import onnx
    import torch

    model = model.eval()
    example = torch.zeros(2, SAMPLE_RATE)
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=MIN_SAMPLES)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch, 1: samples},), dynamo=True, external_data=False,
                verbose=False, report=False,
            )
    except Exception as error:
        raise ExportError(f"torch.onnx.export failed for {type(model).__name__}: "
                          f"{type(error).__name__}: {error}") from error
    proto = program.model_proto
    _strip_debug_info(proto)
    _set_metadata(proto, metadata)
    onnx.save_model(proto, str(path), save_as_external_data=False)


def _strip_debug_info(proto) -> None:
    """Drop what the dynamo exporter adds for debugging: per-node stack traces and FX
    names (``metadata_props``, ``doc_string``) and intermediate ``value_info`` shapes.
    They were ~45% of Wav2Small's file and ONNX Runtime never reads them."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.graph.value_info[:]


def _set_metadata(proto, metadata: dict[str, str]) -> None:
    import onnx

    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                                key: str(value)})
            existing = {p.key: p for p in proto.metadata_props}
    proto.producer_name = "ser-pipeline"


def _stamp(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    _strip_debug_info(proto)
    _set_metadata(proto, metadata)
    onnx.save_model(proto, str(path), save_as_external_data=False)


# -- quantisation ----------------------------------------------------------------------------

class _ClipReader:
    """ONNX Runtime calibration reader over lake clips (one clip per batch)."""

    def __init__(self, signals: Sequence[np.ndarray]) -> None:
        self._items = iter([{INPUT_NAME: np.asarray(s, np.float32)[None, :]} for s in signals])

    def get_next(self) -> dict | None:
        return next(self._items, None)

    def rewind(self) -> None:  # pragma: no cover - part of the reader protocol
        raise NotImplementedError


def _preprocess(fp32: Path, out: Path) -> tuple[Path, str]:
    """``quant_pre_process`` (shape inference + graph optimisation) where it works."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts = [("symbolic", {}), ("skip_symbolic_shape", {"skip_symbolic_shape": True})]
    for label, kwargs in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(fp32), str(out), **kwargs)
            return out, label
        except Exception as error:  # crashes on some dynamo graphs: fall through
            log.info("quant_pre_process (%s) failed: %s", label, error)
    return fp32, "skipped (quant_pre_process failed)"


def _front_end_nodes(path: Path) -> list[str]:
    """Names of the nodes upstream of the first 2-D conv: the DFT/mel/log front end."""
    import onnx

    proto = onnx.load(str(path))
    ranks = {init.name: len(init.dims) for init in proto.graph.initializer}
    producers = {out: node for node in proto.graph.node for out in node.output}
    first = next((n for n in proto.graph.node if n.op_type == "Conv" and len(n.input) > 1
                  and ranks.get(n.input[1]) == 4), None)
    if first is None:
        return []
    upstream, stack = set(), [first.input[0]]
    while stack:
        node = producers.get(stack.pop())
        if node is None or node.name in upstream:
            continue
        upstream.add(node.name)
        stack.extend(node.input)
    return sorted(upstream)


def _name_nodes(path: Path) -> None:
    import onnx

    proto = onnx.load(str(path))
    changed = False
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
            changed = True
    if changed:
        onnx.save_model(proto, str(path), save_as_external_data=False)


def quantize_candidates(fp32: Path, work: Path, calibration: Sequence[np.ndarray], *,
                        recipes: Sequence[Int8Recipe] = STUDENT_RECIPES) -> list[dict]:
    """Build every int8 candidate: ``{method, recipe, path | error, risks, preprocess}``.

    A candidate that :func:`~ser_pipeline.quantize.saturation_risks` flags is kept in the
    record (``risks``) but loses its ``path``, so it can never be chosen.
    """
    pre, pre_label = _preprocess(fp32, work / "pre.onnx")
    _name_nodes(pre)
    front = _front_end_nodes(pre)
    candidates = []
    for recipe in recipes:
        out = work / f"int8-{recipe.name}.onnx"
        record: dict[str, Any] = {"method": recipe.name, "preprocess": pre_label,
                                  "recipe": {**recipe.to_dict(), "nodes_excluded": front}}
        try:
            quantize(recipe, pre, out, calibration=_ClipReader(calibration),
                     nodes_to_exclude=front)
            _stamp(out, {})  # strip debug info so sizes compare like for like
            OnnxModel(out)  # loads in ORT
            record["bytes"] = out.stat().st_size
            record["risks"] = saturation_risks(out)
            if record["risks"]:
                record["error"] = (f"rejected: {len(record['risks'])} integer products can "
                                   "saturate on CPUs without VNNI")
            else:
                record["path"] = str(out)
        except Exception as error:
            record["error"] = f"{type(error).__name__}: {str(error)[:300]}"
        candidates.append(record)
    return candidates


# -- parity ----------------------------------------------------------------------------------

def ccc_per_dimension(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Concordance correlation (audmetric) per label; NaN (constant outputs) counts as 0."""
    import audmetric

    out = {}
    for index, label in enumerate(LABELS):
        value = float(audmetric.concordance_cc(truth[:, index], prediction[:, index]))
        out[label] = value if np.isfinite(value) else 0.0
    return out


def torch_predict(model, signals: Sequence[np.ndarray]) -> np.ndarray:
    import torch

    model = model.eval()
    rows = []
    with torch.inference_mode():
        for signal in signals:
            signal = np.asarray(signal, np.float32)
            if signal.size < MIN_SAMPLES:
                signal = np.pad(signal, (0, MIN_SAMPLES - signal.size))
            rows.append(model(torch.from_numpy(signal)[None, :]).numpy()[0])
    return np.stack(rows).astype(np.float64)


def onnx_predict(path: str | Path, signals: Sequence[np.ndarray]) -> np.ndarray:
    model = OnnxModel(path)
    return np.stack([model.run(np.asarray(s, np.float32)[None, :])[0] for s in signals]
                    ).astype(np.float64)


# -- the whole export ------------------------------------------------------------------------

def count_flops(model, *, seconds: float = 5.0) -> int:
    """FLOPs of one forward pass on a ``seconds`` clip (conv/matmul, 2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model.eval()(torch.zeros(1, int(SAMPLE_RATE * seconds)))
    return int(counter.get_total_flops())


def export_model(
    model,
    *,
    out_dir: str | Path,
    calibration: Sequence[np.ndarray],
    parity_clips: Sequence[np.ndarray],
    metadata: dict[str, str],
    check: bool = True,
    measure_performance: bool = True,
    measure_candidates: bool = False,
    repeats: int = 30,
    latency_repeats: int = 10,
) -> dict:
    """Export, quantise, parity-check and measure one torch model.

    Args:
        model: A student mapping ``[batch, samples]`` -> ``[batch, 3]``.
        out_dir: Where ``model.onnx`` and ``model.int8.onnx`` are written.
        calibration: Clips for static quantisation.
        parity_clips: Held-out clips for the parity check.
        metadata: ``metadata_props`` for both files (``quantization`` is added for int8).
        check: Raise :class:`ParityError` when parity fails (``False`` records it only).
        measure_performance: Measure latency and RSS of both files (subprocess).
        measure_candidates: Also measure every int8 candidate (benchmarks).
        repeats: Timed runs per latency measurement.
        latency_repeats: Timed runs per candidate when ranking int8 candidates by speed.

    Returns:
        A JSON-able dict: files, parity, quantisation candidates and performance. When no
        int8 candidate passes, only ``model.onnx`` is written and ``int8.withheld`` says
        why: that is a result, not an error.

    Raises:
        ParityError: with ``check``, when ONNX fp32 disagrees with torch.
    """
    if len(parity_clips) < 2:
        raise ExportError(f"parity needs at least 2 clips, got {len(parity_clips)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / FP32_FILE
    export_fp32(model, fp32, metadata={**metadata, "quantization": "none"})

    reference = torch_predict(model, parity_clips)
    onnx_fp32 = onnx_predict(fp32, parity_clips)
    shape_check = _shape_check(model, fp32)
    torch_ccc = ccc_per_dimension(reference, onnx_fp32)

    with tempfile.TemporaryDirectory(prefix="ser-quant-") as tmp:
        candidates = quantize_candidates(fp32, Path(tmp), calibration)
        fp32_ms = latency_ms(fp32, repeats=latency_repeats)
        for candidate in candidates:
            if "path" not in candidate:
                candidate["passed"] = False
                continue
            candidate["ccc_vs_fp32"] = ccc_per_dimension(
                onnx_fp32, onnx_predict(candidate["path"], parity_clips))
            candidate["passed"] = min(candidate["ccc_vs_fp32"].values()) >= INT8_PARITY_MIN
            if candidate["passed"]:
                candidate["latency_ms"] = latency_ms(candidate["path"], repeats=latency_repeats)
            if measure_candidates and measure_performance:
                candidate["perf"] = measure(candidate["path"], repeats=repeats)
        # int8 earns its place by speed on this machine, not by file size.
        passing = sorted((c for c in candidates if c["passed"]), key=lambda c: c["latency_ms"])
        chosen = passing[0] if passing else None
        int8 = out_dir / INT8_FILE
        int8.unlink(missing_ok=True)  # a withheld int8 must not linger from an earlier export
        if chosen is not None:
            shutil.copyfile(chosen["path"], int8)
        for candidate in candidates:
            candidate.pop("path", None)
    if chosen is not None:
        _stamp(int8, {**metadata, "quantization": chosen["method"]})

    tried = [c for c in candidates if "ccc_vs_fp32" in c]
    # Nothing passed: report the most faithful candidate's numbers.
    best = chosen or max(tried, key=lambda c: min(c["ccc_vs_fp32"].values()), default=None)
    int8_ccc = best["ccc_vs_fp32"] if best else None
    parity = {
        "clips": len(parity_clips),
        "torch_vs_fp32": torch_ccc,
        "int8_vs_fp32": int8_ccc,
        "max_abs_diff_torch_vs_fp32": float(np.abs(reference - onnx_fp32).max()),
        "thresholds": {"torch_vs_fp32": TORCH_PARITY_MIN, "int8_vs_fp32": INT8_PARITY_MIN},
        "dynamic_shapes_ok": shape_check,
        "int8_passed": chosen is not None,
        "machine": cpu_info(),
    }
    # fp32 must match torch; int8 failing only withholds the int8 file.
    parity["passed"] = bool(min(torch_ccc.values()) >= TORCH_PARITY_MIN and shape_check)
    written = (FP32_FILE, INT8_FILE) if chosen is not None else (FP32_FILE,)
    result: dict[str, Any] = {
        "out_dir": str(out_dir),
        "files": {name: {"path": str(out_dir / name), "bytes": (out_dir / name).stat().st_size,
                         "sha256": sha256_file(out_dir / name)}
                  for name in written},
        "quantization": {
            "chosen": chosen["method"] if chosen else None,
            "recipe": chosen["recipe"] if chosen else None,
            "selection": "fastest parity-passing, saturation-free candidate on this machine",
            "fp32_latency_ms": fp32_ms,
            "int8_latency_ms": chosen["latency_ms"] if chosen else None,
            "machine": parity["machine"],
            "candidates": candidates,
        },
        "int8": {"withheld": chosen is None,
                 "reason": None if chosen else int8_withheld_reason(candidates)},
        "parity": parity,
        "metadata": metadata,
    }
    if measure_performance:
        result["performance"] = performance(model, fp32, int8 if chosen else None,
                                            repeats=repeats)
    if check and not parity["passed"]:
        raise ParityError(_parity_message(parity), parity)
    return result


def _shape_check(model, fp32: Path) -> bool:
    """The graph really has dynamic batch and length: two batch sizes, two lengths."""
    rng = np.random.default_rng(1)
    session = OnnxModel(fp32)
    for shape in ((3, MIN_SAMPLES), (1, SAMPLE_RATE * 3 + 77)):
        batch = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        got = session.run(batch)
        expected = torch_predict(model, list(batch))
        if got.shape != (shape[0], len(LABELS)) or not np.allclose(got, expected, atol=1e-3,
                                                                   rtol=1e-3):
            return False
    return True


def _parity_message(parity: dict) -> str:
    def fmt(values: dict) -> str:
        return ", ".join(f"{k}={v:.4f}" for k, v in values.items())

    return (
        f"parity failed on {parity['clips']} clips: "
        f"CCC(onnx fp32, torch) [{fmt(parity['torch_vs_fp32'])}]"
        f" (need >= {TORCH_PARITY_MIN}); dynamic shapes ok: {parity['dynamic_shapes_ok']}. "
        "Nothing was published."
    )


def int8_withheld_reason(candidates: Sequence[dict]) -> str:
    """One line on why no int8 file ships, e.g. ``int8 parity A 0.97 < 0.98``.

    The numbers are the most faithful candidate's; candidates that could not be built or
    were rejected by the saturation rule are counted.
    """
    tried = [c for c in candidates if "ccc_vs_fp32" in c]
    if not tried:
        errors = "; ".join(f"{c['method']}: {c.get('error')}" for c in candidates)
        return f"no int8 candidate could be used ({errors})"
    best = max(tried, key=lambda c: min(c["ccc_vs_fp32"].values()))
    low = [f"{label[0].upper()} {value:.3f}" for label, value in best["ccc_vs_fp32"].items()
           if value < INT8_PARITY_MIN]
    rejected = len(candidates) - len(tried)
    tail = f" ({best['method']}; {rejected} more rejected)" if rejected else \
        f" ({best['method']})"
    return f"int8 parity {', '.join(low)} < {INT8_PARITY_MIN}{tail}"


def performance(model, fp32: Path, int8: Path | None, *, repeats: int = 30,
                seconds: float = 5.0) -> dict:
    """Latency, added peak RSS and achieved GFLOP/s on one thread for a 5 s clip."""
    flops = count_flops(model, seconds=seconds)
    peak = cpu_peak_gflops()
    out: dict[str, Any] = {"clip_s": seconds, "threads": 1, "gflop_per_clip": flops / 1e9,
                           "cpu_peak": peak, "machine": cpu_info()}
    files = (("fp32", fp32), ("int8", int8)) if int8 is not None else (("fp32", fp32),)
    for label, path in files:
        figures = measure(path, seconds=seconds, repeats=repeats, threads=1)
        achieved = flops / 1e9 / (figures["latency_ms"] / 1000)
        figures["gflops_achieved"] = achieved
        figures["fraction_of_fp32_peak"] = achieved / peak["peak_gflops"] if peak[
            "peak_gflops"] else None
        out[label] = figures
    out["int8_speedup_vs_fp32"] = (out["fp32"]["latency_ms"] / out["int8"]["latency_ms"]
                                   if "int8" in out else None)
    return out


def check_targets(result: dict) -> dict:
    """The paper's Wav2Small figures against ours: ``{figure: {ours, target, met}}``."""
    perf = result.get("performance", {})
    ours = {"int8_bytes": (result["files"].get(INT8_FILE) or {}).get("bytes"),
            "latency_ms": perf.get("int8", {}).get("latency_ms"),
            "peak_rss_increase_mb": perf.get("int8", {}).get("peak_rss_increase_mb")}
    return {key: {"ours": ours[key], "target": target,
                  "met": ours[key] is not None and ours[key] <= target}
            for key, target in WAV2SMALL_TARGETS.items()}


# -- clips from the lake -----------------------------------------------------------------------

def lake_clips(lake: Lake, *, split: str | None, limit: int, split_name: str | None = None,
               exclude: set[str] | None = None) -> tuple[list[str], list[np.ndarray]]:
    """Up to ``limit`` decoded clips (cropped to MAX_CLIP_S), deterministic order.

    ``split=None`` takes any clip in the audio table.
    """
    import pyarrow.dataset as ds

    from ser_pipeline.audio import decode_flac

    if split is not None:
        condition = ds.field("split") == split
        if split_name:
            condition = condition & (ds.field("split_name") == split_name)
        ids = sorted(lake.ids("splits", filter=condition))
    else:
        ids = sorted(lake.ids("audio"))
    ids = [i for i in ids if i not in (exclude or set())][:limit]
    if not ids:
        return [], []
    rows = lake.audio_for(ids, columns=["audio_id", "audio"])
    by_id = dict(zip(rows.column("audio_id").to_pylist(), rows.column("audio").to_pylist(),
                     strict=True))
    keep_ids, signals = [], []
    crop = int(MAX_CLIP_S * SAMPLE_RATE)
    for audio_id in ids:
        if audio_id in by_id:
            keep_ids.append(audio_id)
            signals.append(decode_flac(by_id[audio_id]["bytes"])[:crop])
    return keep_ids, signals


def run_ccc(lake: Lake, run_id: str, meta: dict) -> list[dict]:
    """CCC per reference/corpus/split from the metrics table, else the run's best dev CCC."""
    import pyarrow.dataset as ds

    rows = lake.read("metrics", filter=ds.field("run_id") == run_id).to_pylist() \
        if lake.parts("metrics") else []
    if rows:
        latest = max(r["evaluated_at"] for r in rows)
        grouped: dict[tuple, dict] = {}
        for row in rows:
            if row["evaluated_at"] != latest:
                continue
            key = (row["reference"], row["corpus"], row["split"])
            entry = grouped.setdefault(key, {"reference": key[0], "corpus": key[1],
                                             "split": key[2], "n": row["n"],
                                             "eval_id": row["eval_id"], "source": "metrics"})
            entry[row["dimension"]] = row["ccc"]
        out = []
        for entry in grouped.values():
            dims = [entry[d] for d in LABELS if d in entry]
            entry["mean"] = float(np.mean(dims)) if dims else None
            out.append(entry)
        return sorted(out, key=lambda e: (e["reference"], e["corpus"] or "", e["split"] or ""))
    best = meta.get("best_dev_ccc") or {}
    if not best:
        return []
    return [{"reference": "teacher", "corpus": ",".join(meta.get("corpora") or []) or None,
             "split": "dev", "source": "run.best_dev_ccc",
             **{k: best.get(k) for k in (*LABELS, "mean")}}]


def export_run(
    lake: Lake,
    run_id: str,
    *,
    out_dir: str | Path,
    calibration_clips: int = 32,
    parity_clips: int = 32,
    check: bool = True,
    measure_performance: bool = True,
    repeats: int = 30,
) -> dict:
    """Export a run's best checkpoint to ``out_dir`` (fp32, and int8 if it passes parity).

    Args:
        lake: The lake holding the run and the clips.
        run_id: Training run (``runs/<run_id>/``).
        out_dir: Output directory (created); ``export.json`` records the result.
        calibration_clips: Train clips used to calibrate static int8.
        parity_clips: Dev clips used for parity (falls back to other clips, recorded).
        check: Raise :class:`ParityError` on failed parity (before any publish).
        measure_performance: Measure latency/RSS/GFLOP/s on a 5 s clip, one thread.
        repeats: Timed runs per latency figure.

    Returns:
        The export summary (also written to ``out_dir/export.json``); ``int8.withheld``
        says whether the int8 file was left out, and why.

    Raises:
        ser_pipeline.runs.RunError: unknown run or no best checkpoint.
        ParityError: ONNX fp32 disagrees with torch (numbers in the message and
            ``.parity``).
    """
    from ser_pipeline.runs import load_run_model

    model, meta = load_run_model(lake, run_id, which="best")
    split_name = meta.get("split_name")
    parity_ids, parity_signals = lake_clips(lake, split="dev", limit=parity_clips,
                                            split_name=split_name)
    parity_source = "dev split"
    if len(parity_signals) < 2:
        parity_ids, parity_signals = lake_clips(lake, split=None, limit=parity_clips)
        parity_source = "audio table (no dev split found)"
        log.warning("run %s: no dev clips in the splits table; parity uses %d lake clips",
                    run_id, len(parity_signals))
    _, calibration = lake_clips(lake, split="train", limit=calibration_clips,
                                split_name=split_name)
    if not calibration:
        _, calibration = lake_clips(lake, split=None, limit=calibration_clips,
                                    exclude=set(parity_ids))
    if not calibration:
        calibration = parity_signals
    if len(parity_signals) < 2:
        raise ExportError(f"lake {lake.url} has fewer than 2 clips: parity cannot be checked")

    checkpoint_sha = hashlib.sha256(lake.storage.read_bytes(meta["best_checkpoint"])).hexdigest()
    provenance = {
        "run_id": run_id, "student": meta["student"],
        "student_options": meta.get("student_options") or {},
        "teacher_id": meta.get("teacher_id"), "teacher_sha256": meta.get("teacher_sha256"),
        "lake_snapshot": meta.get("lake_snapshot"), "git_sha": meta.get("git_sha"),
        "checkpoint": meta["best_checkpoint"], "checkpoint_sha256": checkpoint_sha,
        "labels": list(LABELS), "sample_rate": SAMPLE_RATE,
        "input": INPUT_NAME, "output": OUTPUT_NAME,
    }
    manifest_hash = canonical_hash(provenance)
    metadata = {
        "labels": json.dumps(list(LABELS)), "sample_rate": str(SAMPLE_RATE),
        "teacher_id": str(meta.get("teacher_id")), "teacher_sha256":
        str(meta.get("teacher_sha256")), "student": meta["student"], "run_id": run_id,
        "min_samples": str(MIN_SAMPLES), "manifest_hash": manifest_hash,
        "manifest_hash_of": "sha256 of canonical JSON of manifest.provenance",
    }
    result = export_model(model, out_dir=out_dir, calibration=calibration,
                          parity_clips=parity_signals, metadata=metadata, check=False,
                          measure_performance=measure_performance, repeats=repeats)
    result.update(
        run_id=run_id, student=meta["student"], params=meta.get("params"),
        provenance=provenance, manifest_hash=manifest_hash,
        license=teacher_license(meta.get("teacher_id")), ccc=run_ccc(lake, run_id, meta),
        run={k: meta.get(k) for k in ("seed", "hyperparams", "corpora", "split_name",
                                      "best_dev_ccc")},
        lake=lake.url,
    )
    result["parity"].update(source=parity_source, audio_ids=parity_ids,
                            calibration_clips=len(calibration))
    if meta["student"].startswith("wav2small"):
        result["targets"] = check_targets(result)
    Path(out_dir, "export.json").write_text(json.dumps(result, indent=2, default=str))
    if check and not result["parity"]["passed"]:
        raise ParityError(_parity_message(result["parity"]), result["parity"])
    return result


def load_export(out_dir: str | Path) -> dict:
    """The summary of an earlier export (``out_dir/export.json``)."""
    path = Path(out_dir) / "export.json"
    if not path.is_file():
        raise ExportError(f"{path} not found: run 'ser export --run RUN_ID --out {out_dir}'")
    result = json.loads(path.read_text())
    for name, info in result["files"].items():
        info["path"] = os.path.join(str(out_dir), name)
    return result
