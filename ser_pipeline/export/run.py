"""The export drivers: a torch model to checked, measured ONNX files, and a training run to
the same plus its provenance (``export.json``).

int8: static quantisation of the conv stack, calibrated on lake clips, with only the
type choices that cannot saturate on any CPU (:mod:`ser_pipeline.export.int8`); each
candidate is checked by that rule, then by parity, and the fastest passing one on this
machine ships. fp32 and that int8 file are then timed back to back with the student
runner's timer (:class:`~ser_pipeline.export.result.Latency`), which is what decides the
file ``ser predict`` serves by default.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ser_pipeline.cpu import cpu_info
from ser_pipeline.export.errors import ExportError, ParityError
from ser_pipeline.export.graph import (
    FP32_FILE,
    INPUT_NAME,
    INT8_FILE,
    OUTPUT_NAME,
    export_fp32,
    onnx_metadata,
    stamp,
)
from ser_pipeline.export.int8 import quantize_candidates
from ser_pipeline.export.lake import (
    CALIBRATION_PERTURBATIONS,
    ClipSet,
    clips_across_corpora,
    lake_clips,
    run_ccc,
    with_perturbed,
)
from ser_pipeline.export.licence import teacher_license
from ser_pipeline.export.measure import check_targets, paper_targets_for, performance
from ser_pipeline.export.parity import (
    INT8_MAX_ABS_DIFF,
    INT8_PARITY_MIN,
    TORCH_PARITY_MIN,
    ccc_per_dimension,
    int8_verdict,
    int8_withheld_reason,
    most_faithful,
    onnx_predict,
    parity_message,
    shape_check,
    torch_predict,
)
from ser_pipeline.export.result import (
    ExportedFile,
    ExportResult,
    Int8State,
    Latency,
    Measurement,
    Parity,
    Provenance,
    Quantization,
    RunExport,
    Training,
)
from ser_pipeline.hashing import canonical_hash, sha256_bytes, sha256_file
from ser_pipeline.lake import Lake
from ser_pipeline.onnx_model import DEFAULT_THREADS, latency_ms, measure
from ser_pipeline.runs import RunInfo
from ser_pipeline.schemas import LABELS, SAMPLE_RATE

log = logging.getLogger(__name__)

SELECTION = "fastest parity-passing, saturation-free candidate on this machine"


def export_model(
    model: Any,
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
) -> ExportResult:
    """Export, quantise, parity-check and measure one torch model.

    Args:
        model: A student mapping ``[batch, samples]`` -> ``[batch, 3]``.
        out_dir: Where ``model.onnx`` and ``model.int8.onnx`` are written.
        calibration: Clips for static quantisation.
        parity_clips: Held-out clips for the parity check.
        metadata: ``metadata_props`` for both files (``min_samples`` and
            ``quantization`` are added).
        check: Raise :class:`ParityError` when parity fails (``False`` records it only).
        measure_performance: Measure latency and RSS of both files (subprocess).
        measure_candidates: Also measure every int8 candidate (benchmarks).
        repeats: Timed runs per fresh-process measurement.
        latency_repeats: Timed runs per file when ranking int8 candidates and fp32.

    Returns:
        The result (not yet saved). When no int8 candidate passes, only ``model.onnx`` is
        written and ``int8.withheld`` says why: that is a result, not an error.

    Raises:
        ParityError: with ``check``, when ONNX fp32 disagrees with torch.
    """
    from ser_pipeline.students import MIN_SAMPLES

    if len(parity_clips) < 2:
        raise ExportError(f"parity needs at least 2 clips, got {len(parity_clips)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {**metadata, "min_samples": str(MIN_SAMPLES)}
    fp32 = out_dir / FP32_FILE
    export_fp32(model, fp32, metadata={**metadata, "quantization": "none"},
                min_samples=MIN_SAMPLES)

    reference = torch_predict(model, parity_clips)
    onnx_fp32 = onnx_predict(fp32, parity_clips)
    shapes_ok = shape_check(model, fp32, min_samples=MIN_SAMPLES)
    torch_ccc = ccc_per_dimension(reference, onnx_fp32)

    int8 = out_dir / INT8_FILE
    int8.unlink(missing_ok=True)  # a withheld int8 must not linger from an earlier export
    with tempfile.TemporaryDirectory(prefix="ser-quant-") as tmp:
        built = quantize_candidates(fp32, Path(tmp), calibration)
        fp32_ms = latency_ms(fp32, repeats=latency_repeats)
        for candidate, path in built:
            if path is None:
                continue
            candidate.ccc_vs_fp32, candidate.max_abs_diff_vs_fp32, candidate.passed = (
                int8_verdict(onnx_fp32, onnx_predict(path, parity_clips)))
            if candidate.passed:
                candidate.latency_ms = latency_ms(path, repeats=latency_repeats)
            if measure_candidates and measure_performance:
                candidate.perf = Measurement(**measure(path, repeats=repeats))
        # int8 earns its place by speed on this machine, not by file size.
        passing = sorted(((c, p) for c, p in built if c.passed and p is not None),
                         key=lambda pair: pair[0].latency_ms or 0.0)
        chosen = passing[0][0] if passing else None
        if passing:
            shutil.copyfile(passing[0][1], int8)
    candidates = [candidate for candidate, _ in built]
    if chosen is not None:
        stamp(int8, {**metadata, "quantization": chosen.method})

    best = chosen or most_faithful(candidates)
    parity = Parity(
        clips=len(parity_clips), torch_vs_fp32=torch_ccc,
        int8_vs_fp32=best.ccc_vs_fp32 if best else None,
        int8_max_abs_diff=best.max_abs_diff_vs_fp32 if best else None,
        max_abs_diff_torch_vs_fp32=float(np.abs(reference - onnx_fp32).max()),
        thresholds={"torch_vs_fp32": TORCH_PARITY_MIN, "int8_vs_fp32": INT8_PARITY_MIN,
                    "int8_max_abs_diff": INT8_MAX_ABS_DIFF},
        dynamic_shapes_ok=shapes_ok, int8_passed=chosen is not None,
        # fp32 must match torch; int8 failing only withholds the int8 file.
        passed=bool(min(torch_ccc.values()) >= TORCH_PARITY_MIN and shapes_ok),
    )
    written = (FP32_FILE, INT8_FILE) if chosen is not None else (FP32_FILE,)
    result = ExportResult(
        out_dir=str(out_dir),
        files={name: ExportedFile(path=str(out_dir / name),
                                  bytes=(out_dir / name).stat().st_size,
                                  sha256=sha256_file(out_dir / name)) for name in written},
        machine=cpu_info(), min_samples=MIN_SAMPLES, parity=parity,
        quantization=Quantization(chosen=chosen.method if chosen else None,
                                  recipe=chosen.recipe if chosen else None,
                                  selection=SELECTION, candidates=candidates),
        latency=Latency(fp32_ms=fp32_ms, int8_ms=chosen.latency_ms if chosen else None,
                        clip_s=5.0, threads=DEFAULT_THREADS, repeats=latency_repeats),
        int8=Int8State(withheld=chosen is None,
                       reason=None if chosen else int8_withheld_reason(candidates)),
    )
    if measure_performance:
        result.performance = performance(model, fp32, int8 if chosen else None,
                                         repeats=repeats)
    if check and not parity.passed:
        raise ParityError(parity_message(parity), parity)
    return result


def _provenance(run: RunInfo, checkpoint_sha256: str) -> Provenance:
    return Provenance(
        run_id=run.run_id, student=run.student, student_options=run.student_options,
        teacher_id=run.teacher_id, teacher_sha256=run.teacher_sha256,
        lake_snapshot=run.lake_snapshot, git_sha=run.git_sha,
        checkpoint=run.best_checkpoint, checkpoint_sha256=checkpoint_sha256,
        labels=list(LABELS), sample_rate=SAMPLE_RATE, input=INPUT_NAME, output=OUTPUT_NAME)


def _training(run: RunInfo) -> Training:
    return Training(seed=run.seed, hyperparams=run.hyperparams, corpora=run.corpora,
                    split_name=run.split_name, best_dev_ccc=run.best_dev_ccc)


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
) -> ExportResult:
    """Export a run's best checkpoint to ``out_dir`` (fp32, and int8 if it passes parity).

    Args:
        lake: The lake holding the run and the clips.
        run_id: Training run (``runs/<run_id>/``).
        out_dir: Output directory (created); ``export.json`` records the result.
        calibration_clips: Train clips used to calibrate static int8, taken in turn from
            every corpus in the lake, each with a perturbed copy.
        parity_clips: Dev clips used for parity, likewise from every corpus, each with a
            perturbed copy (falls back to other clips, recorded).
        check: Raise :class:`ParityError` on failed parity (before any publish).
        measure_performance: Measure latency/RSS/GFLOP/s on a 5 s clip, one thread.
        repeats: Timed runs per latency figure.

    Returns:
        The export result (also written to ``out_dir/export.json``); ``int8.withheld``
        says whether the int8 file was left out, and why.

    Raises:
        ser_pipeline.runs.RunError: unknown run or no best checkpoint.
        ParityError: ONNX fp32 disagrees with torch (numbers in the message and
            ``.parity``).
    """
    from ser_pipeline.runs import load_run_model

    model, run = load_run_model(lake, run_id, which="best")
    split_name = run.split_name
    held = clips_across_corpora(lake, split="dev", limit=parity_clips, split_name=split_name)
    parity_source = "dev split of every corpus (any clip of a corpus without splits)"
    if len(held.signals) < 2:
        ids, signals = lake_clips(lake, split=None, limit=parity_clips)
        held = ClipSet(ids, signals, corpora=[])
        parity_source = "audio table (no dev split found)"
        log.warning("run %s: no dev clips in the splits table; parity uses %d lake clips",
                    run_id, len(signals))
    if len(held.signals) < 2:
        raise ExportError(f"lake {lake.url} has fewer than 2 clips: parity cannot be checked")
    train = clips_across_corpora(lake, split="train", limit=calibration_clips,
                                 split_name=split_name, exclude=set(held.ids))
    if not train.signals:
        train = held
    # Perturbed copies: calibration sees levels and channels beyond the clean clips', and
    # parity checks every perturbation of the robustness suite, the room and the spectral
    # tilt included, which calibration never sees.
    from ser_pipeline.perturb import PERTURBATIONS

    calibration = with_perturbed(train, CALIBRATION_PERTURBATIONS, seed=0)
    parity = with_perturbed(held, list(PERTURBATIONS), seed=1)

    provenance = _provenance(run, sha256_bytes(lake.storage.read_bytes(run.best_checkpoint)))
    manifest_hash = canonical_hash(provenance.model_dump(mode="json"))
    result = export_model(
        model, out_dir=out_dir, calibration=calibration.signals, parity_clips=parity.signals,
        metadata=onnx_metadata(provenance, manifest_hash=manifest_hash),
        check=False, measure_performance=measure_performance, repeats=repeats)
    result.parity = result.parity.model_copy(update={
        "source": parity_source, "audio_ids": held.ids, "corpora": held.corpora,
        "perturbed": parity.perturbed, "perturbations": list(parity.perturbations),
        "calibration_clips": len(calibration.signals),
        "calibration_corpora": calibration.corpora,
        "calibration_perturbed": calibration.perturbed})
    result.run = RunExport(
        provenance=provenance, manifest_hash=manifest_hash, params=run.params,
        license=teacher_license(provenance.teacher_id),
        ccc=run_ccc(lake, run_id, corpora=run.corpora, best_dev_ccc=run.best_dev_ccc),
        training=_training(run), lake=lake.url)
    targets = paper_targets_for(provenance.student)
    if targets is not None:
        result.run.targets = check_targets(result, targets)
    result.save()
    if check and not result.parity.passed:
        raise ParityError(parity_message(result.parity), result.parity)
    return result
