"""The drivers: :func:`run_robustness` (a model on one split of each corpus) and
:func:`write_robustness` (its rows, under the model's published name)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.evaluate import EvaluateError, Predictor, load_predictor, select_clips
from ser_pipeline.lake import Lake, content_key
from ser_pipeline.onnx_model import BATCH_SIZE, DEFAULT_THREADS, predict_clip
from ser_pipeline.perturb import PERTURBATIONS, PerturbationError
from ser_pipeline.progress import progress_bar
from ser_pipeline.robustness import SER_TESTS, Thresholds
from ser_pipeline.robustness_stage.errors import RobustnessError
from ser_pipeline.robustness_stage.records import RobustnessRun
from ser_pipeline.robustness_stage.selection import _run_selection, robustness_key
from ser_pipeline.stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED

#: Clips per corpus unless a caller says otherwise: 10 model passes over each (clean and
#: 9 perturbations), with the clips' FLAC bytes held in memory.
DEFAULT_MAX_CLIPS = 1000
REFERENCES = ("teacher", "human")


def run_robustness(
    lake: Lake,
    *,
    run_id: str | None = None,
    model: str | None = None,
    predictor: Predictor | None = None,
    corpora: Sequence[str] | None = None,
    split: str = "dev",
    split_name: str | None = None,
    reference: str = "teacher",
    teacher_id: str | None = None,
    perturbations: Sequence[str] | None = None,
    max_clips: int | None = DEFAULT_MAX_CLIPS,
    thresholds: Thresholds = SER_TESTS,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    n_resamples: int = DEFAULT_RESAMPLES,
    batch_size: int = BATCH_SIZE,
    threads: int = DEFAULT_THREADS,
    window_s: float = 10.0,
    overlap_s: float = 2.0,
    write: bool = True,
    settings: Settings | None = None,
) -> RobustnessRun:
    """Run the robustness suite for one model on one split of each corpus.

    Args:
        lake: The lake holding audio, splits and labels (rows are written there too).
        run_id: A training run (its best checkpoint).
        model: An ONNX file, a model folder or ``registry://name[@version][#int8|#fp32]``.
        predictor: Instead of ``run_id``/``model``: any evaluation
            :class:`~ser_pipeline.evaluate.Predictor`.
        corpora: Corpora (default the run's training corpora, else every corpus in
            ``splits``).
        split: Which split's clips (default ``dev``; ``all`` for a corpus without splits).
        split_name: Split definition when a corpus has several (default: the run's).
        reference: ``teacher`` (the model's teacher, or ``teacher_id``) or ``human``.
        teacher_id: The teacher whose labels are the reference.
        perturbations: Names in :data:`ser_pipeline.perturb.PERTURBATIONS` (default all).
        max_clips: Most clips per corpus (a seeded subset); None for every clip.
        thresholds: Pass/fail thresholds (default audEERING ser-tests').
        seed: Seed of the perturbations, the subset and the intervals.
        level: Confidence level of the intervals.
        n_resamples: Bootstrap resamples.
        batch_size: Most equal-length windows of one clip per model call.
        threads: ONNX Runtime intra-op threads.
        window_s: Window length for long clips (seconds), as in evaluation.
        overlap_s: Window overlap (seconds).
        write: Write the rows to ``robustness/`` (False: compute only, e.g. before a
            publish names the model; :func:`write_robustness` writes them later).
        settings: Settings (registry for ``registry://`` URIs).

    Returns:
        :class:`RobustnessRun`.

    Raises:
        EvaluateError: A bad model, corpus or split choice (as in ``ser evaluate``).
        RobustnessError: A bad reference or option, an ambiguous teacher, or no clip with
            a reference.
        PerturbationError: An unknown perturbation name.
    """
    settings = settings or get_settings()
    if reference not in REFERENCES:
        raise RobustnessError(f"unknown reference {reference!r}: use 'teacher' or 'human'")
    names = list(PERTURBATIONS) if perturbations is None else list(dict.fromkeys(perturbations))
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown or not names:
        raise PerturbationError(f"unknown perturbation(s) {', '.join(map(repr, unknown))}; "
                                f"choose from {', '.join(PERTURBATIONS)}")
    if predictor is None:
        predictor = load_predictor(lake, run_id=run_id, model=model, batch_size=batch_size,
                                   threads=threads, settings=settings)
    base = predictor.identity
    identity = replace(base, model_key=content_key(base.model_key, window_s, overlap_s))
    model_file = getattr(getattr(predictor, "model", None), "path", None)
    model_file = model_file.name if model_file is not None else None
    chosen = list(dict.fromkeys(corpora)) if corpora else list(identity.corpora) or sorted(
        lake.ids("splits", column="corpus"))
    if not chosen:
        raise EvaluateError(f"{identity.model} records no training corpora and the lake has "
                            "no splits; name the corpora with --corpus")
    selections, notices = select_clips(lake, corpora=chosen, splits=(split,),
                                       split_name=split_name or identity.split_name)
    if all(s.split != split for s in selections) and split != "all":
        notices.append(f"no {split!r} clips selected; corpora without splits are tested "
                       "whole as split 'all'")
    teacher = teacher_id or identity.teacher_id

    def predict_one(signal: np.ndarray) -> np.ndarray:
        values, _ = predict_clip(predictor.predict, signal, min_samples=predictor.min_samples,
                                 window_s=window_s, overlap_s=overlap_s,
                                 batch_size=predictor.batch_size)
        return values

    options = {"perturbations": names, "seed": seed, "level": level,
               "n_resamples": n_resamples, "thresholds": thresholds.to_dict(),
               "window_s": window_s, "overlap_s": overlap_s}
    records = []
    with progress_bar(f"robustness {identity.model}",
                      total=len(names) * len(selections)) as advance:
        for selection in selections:
            record = _run_selection(
                lake, predict_one, identity, selection, model_file=model_file,
                reference=reference, teacher=teacher, names=names, options=options,
                max_clips=max_clips, thresholds=thresholds, notices=notices, write=write,
                advance=advance)
            if record is not None:
                records.append(record)
    if not records:
        raise RobustnessError(f"no clip of {', '.join(chosen)} ({split}) has a {reference} "
                              "reference: " + "; ".join(notices))
    return RobustnessRun(identity, model_file, tuple(records), tuple(notices))

def write_robustness(lake: Lake, run: RobustnessRun, *, model: str | None = None
                     ) -> RobustnessRun:
    """Write a run's rows (as ``model``, e.g. ``name@version`` once published).

    The part key is the one ``run_robustness`` gives the same request under that name,
    so running the suite again on the published model finds these rows. Returns the run as
    written (keys, ``written`` per suite).
    """
    name = model or run.identity.model
    identity = replace(run.identity, model=name)
    records = []
    for record in run.records:
        key = robustness_key(name, record.request)
        rows = tuple(row | {"model": name, "robustness_id": key} for row in record.rows)
        written = lake.write_part("robustness", list(rows), key=key)
        records.append(replace(record, robustness_id=key, rows=rows, written=written))
    return RobustnessRun(identity, run.model_file, tuple(records), run.notices)
