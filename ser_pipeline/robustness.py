"""Robustness: how a model's predictions hold up under the perturbations of
:mod:`ser_pipeline.perturb`, judged against audEERING's ser-tests thresholds.

For each perturbation and dimension the suite reports:

* CCC against the reference on clean audio, with its interval (the same for every
  perturbation);
* CCC on the perturbed audio, with its interval;
* the drop, clean − perturbed, with a *paired* interval (the same resampled units for
  both);
* the share of clips whose prediction moved by less than 0.05 (ser-tests' "percentage
  unchanged predictions": ``|clean − perturbed| < 0.05`` on the 0..1 scale).

Pass/fail uses ser-tests' thresholds on the point values, as ser-tests does: a CCC drop of
at most 0.05 and at least 90 % of predictions unchanged (:data:`SER_TESTS`). The drop's
interval sits beside it to show how sure that verdict is.

Clip ``i`` under perturbation ``p`` is perturbed with seed ``[seed, crc32(p), i]``, so a
run is reproducible and adding clips or perturbations does not change the others' noise.

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> signals = [rng.standard_normal(4000).astype(np.float32) * s
    ...            for s in rng.uniform(0.05, 0.5, size=30)]
    >>> reference = np.array([[float(np.std(x))] * 3 for x in signals]) * 2
    >>> def loudness(batch):  # a predictor that reads the level: fragile under gain
    ...     return np.array([[float(np.std(x)) * 2] * 3 for x in batch])
    >>> report = robustness_suite(loudness, signals, reference,
    ...                           perturbations=["gain_minus20db"], n_resamples=200)
    >>> result = report.results[0]
    >>> result.passed, round(result.dimensions[0].unchanged_share, 2)
    (False, 0.0)
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ser_pipeline.perturb import PERTURBATIONS, PerturbationError
from ser_pipeline.schemas import LABELS
from ser_pipeline.stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Estimate,
    Resampling,
    StatsError,
    bootstrap_metrics,
    compare_models,
)
from ser_pipeline.stats.core import JsonResult, as_matrix, finite_or_none


@dataclass(frozen=True)
class Thresholds(JsonResult):
    """Pass/fail thresholds per dimension.

    Attributes:
        max_ccc_drop: Largest allowed clean − perturbed CCC.
        min_unchanged_share: Smallest allowed share of unchanged predictions.
        unchanged_below: A prediction is unchanged when it moved by less than this.
        source: Where the numbers come from.
    """

    max_ccc_drop: float
    min_unchanged_share: float
    unchanged_below: float
    source: str


#: audEERING ser-tests' robustness thresholds.
SER_TESTS = Thresholds(max_ccc_drop=0.05, min_unchanged_share=0.90, unchanged_below=0.05,
                       source="audEERING ser-tests (robustness: change CCC, percentage "
                              "unchanged predictions)")


@dataclass(frozen=True)
class DimensionRobustness(JsonResult):
    """One dimension under one perturbation.

    Attributes:
        dimension: arousal, dominance or valence.
        clean_ccc: CCC against the reference on clean audio, with interval.
        perturbed_ccc: CCC against the reference on perturbed audio, with interval.
        ccc_drop: clean − perturbed, with a paired interval (positive: worse).
        unchanged_share: Share of clips whose prediction moved by less than
            ``thresholds.unchanged_below``.
        passed_drop: ``ccc_drop.value <= max_ccc_drop`` (False when undefined).
        passed_unchanged: ``unchanged_share >= min_unchanged_share``.
        passed: Both.
    """

    dimension: str
    clean_ccc: Estimate
    perturbed_ccc: Estimate
    ccc_drop: Estimate
    unchanged_share: float
    passed_drop: bool
    passed_unchanged: bool
    passed: bool


@dataclass(frozen=True)
class PerturbationResult(JsonResult):
    """One perturbation: its definition, each dimension's figures and the verdict."""

    perturbation: str
    description: str
    parameters: dict[str, float | str]
    dimensions: tuple[DimensionRobustness, ...]
    passed: bool


@dataclass(frozen=True)
class RobustnessReport(JsonResult):
    """Every perturbation's results, with how they were obtained.

    Attributes:
        n_clips: Clips scored.
        seed: Seed of the perturbations (the intervals' seed is in ``resampling``).
        thresholds: The pass/fail thresholds used.
        resampling: How the intervals were obtained.
        results: One per perturbation, in the order asked.
    """

    n_clips: int
    seed: int
    thresholds: Thresholds
    resampling: Resampling
    results: tuple[PerturbationResult, ...]

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def rows(self) -> list[dict[str, object]]:
        """Flat rows, one per (perturbation, dimension), for the ``robustness`` table.

        The interval columns are named as in ``metrics`` (``ci_level``, ``ci_method``,
        ``ci_unit``, ``ci_units``, ``ci_resamples``).
        """
        r, t = self.resampling, self.thresholds
        out = []
        for result in self.results:
            for d in result.dimensions:
                row: dict[str, object] = {"perturbation": result.perturbation,
                                          "description": result.description,
                                          "dimension": d.dimension}
                for name in ("clean_ccc", "perturbed_ccc", "ccc_drop"):
                    value: Estimate = getattr(d, name)
                    row |= {name: finite_or_none(value.value),
                            f"{name}_lo": finite_or_none(value.lo),
                            f"{name}_hi": finite_or_none(value.hi)}
                row |= {"unchanged_share": finite_or_none(d.unchanged_share),
                        "max_ccc_drop": t.max_ccc_drop,
                        "min_unchanged_share": t.min_unchanged_share,
                        "passed_drop": d.passed_drop, "passed_unchanged": d.passed_unchanged,
                        "passed": d.passed, "n_clips": self.n_clips, "ci_level": r.level,
                        "ci_method": r.method, "ci_unit": r.unit, "ci_units": r.n_units,
                        "ci_resamples": r.n_resamples, "perturbation_seed": self.seed}
                out.append(row)
        return out


def perturbation_seed(seed: int, name: str, index: int) -> list[int]:
    """The seed of clip ``index`` under perturbation ``name``: stable across processes.

    Examples:
        >>> perturbation_seed(0, "noise_snr5db", 3)
        [0, 987736916, 3]
    """
    return [seed, zlib.crc32(name.encode()), index]


def robustness_suite(
    predict: Callable[[list[np.ndarray]], np.ndarray],
    signals: Sequence[np.ndarray],
    reference: object,
    *,
    speakers: Sequence[object] | None = None,
    perturbations: Sequence[str] | None = None,
    clean_predictions: object | None = None,
    thresholds: Thresholds = SER_TESTS,
    seed: int = DEFAULT_SEED,
    level: float = DEFAULT_LEVEL,
    n_resamples: int = DEFAULT_RESAMPLES,
    batch_clips: int = 64,
    progress: Callable[[PerturbationResult], None] | None = None,
) -> RobustnessReport:
    """Run ``predict`` on clean and perturbed clips and judge each perturbation.

    Args:
        predict: Maps a list of 16 kHz float32 signals to ``[n, 3]`` predictions
            (arousal, dominance, valence), e.g. ``Predictor.predict``.
        signals: The clean dev clips.
        reference: References ``[n, 3]`` (teacher or human labels) for those clips.
        speakers: Speaker id per clip: intervals then resample speakers.
        perturbations: Names from :data:`ser_pipeline.perturb.PERTURBATIONS` (default all).
        clean_predictions: Predictions on the clean clips when already known (e.g. from
            ``predictions/``); else ``predict`` computes them.
        thresholds: Pass/fail thresholds (default ser-tests').
        seed: Seed of the perturbations and of the intervals.
        level: Confidence level.
        n_resamples: Bootstrap resamples.
        batch_clips: Clips perturbed and predicted at a time (bounds memory).
        progress: Called with each perturbation's result as soon as it is judged (e.g.
            to advance a progress bar).

    Returns:
        :class:`RobustnessReport`.

    Raises:
        StatsError: No clips, or references/predictions that do not match the clips.
        PerturbationError: An unknown perturbation name or a bad signal.
    """
    names = list(PERTURBATIONS) if perturbations is None else list(perturbations)
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        raise PerturbationError(f"unknown perturbation(s) {', '.join(map(repr, unknown))}; "
                                f"choose from {', '.join(PERTURBATIONS)}")
    signals = list(signals)
    if not signals:
        raise StatsError("no clips to test robustness on: pass the dev clips' signals")
    ref = as_matrix(reference, "references")
    if len(ref) != len(signals):
        raise StatsError(f"{len(ref)} references for {len(signals)} clips: pass one row per "
                         "clip, in the same order")

    def run(batch_signals: list[np.ndarray]) -> np.ndarray:
        out = as_matrix(predict(batch_signals), "the predictor's output")
        if len(out) != len(batch_signals):
            raise StatsError(f"the predictor returned {len(out)} rows for "
                             f"{len(batch_signals)} signals")
        return out

    if clean_predictions is None:
        clean = np.concatenate([run(signals[i:i + batch_clips])
                                for i in range(0, len(signals), batch_clips)])
    else:
        clean = as_matrix(clean_predictions, "clean predictions")
        if clean.shape != ref.shape:
            raise StatsError(f"clean predictions {clean.shape} do not match references "
                             f"{ref.shape}")
    options = {"units": speakers, "level": level, "n_resamples": n_resamples, "seed": seed}
    clean_metrics = bootstrap_metrics(clean, ref, **options)
    results = []
    for name in names:
        entry = PERTURBATIONS[name]
        perturbed = np.concatenate([
            run([entry(signals[i], seed=perturbation_seed(seed, name, i))
                 for i in range(start, min(start + batch_clips, len(signals)))])
            for start in range(0, len(signals), batch_clips)])
        results.append(_judge(entry.name, entry.description, dict(entry.parameters), clean,
                              perturbed, ref, clean_metrics, thresholds, options))
        if progress is not None:
            progress(results[-1])
    return RobustnessReport(len(signals), seed, thresholds, clean_metrics.resampling,
                            tuple(results))


def _judge(name: str, description: str, parameters: dict, clean: np.ndarray,
           perturbed: np.ndarray, ref: np.ndarray, clean_metrics, thresholds: Thresholds,
           options: dict) -> PerturbationResult:
    perturbed_metrics = bootstrap_metrics(perturbed, ref, **options)
    paired = compare_models(perturbed, clean, ref, **options)
    moved = np.abs(perturbed - clean)
    with np.errstate(invalid="ignore"):
        unchanged = np.nanmean(np.where(np.isnan(moved), np.nan,
                                        moved < thresholds.unchanged_below), axis=0)
    dimensions = []
    for d, dimension in enumerate(LABELS):
        delta = paired.dimension(dimension).delta  # perturbed − clean
        drop = Estimate(-delta.value, -delta.hi, -delta.lo, delta.undefined_resamples)
        passed_drop = bool(drop.value <= thresholds.max_ccc_drop)
        passed_unchanged = bool(unchanged[d] >= thresholds.min_unchanged_share)
        dimensions.append(DimensionRobustness(
            dimension=dimension, clean_ccc=clean_metrics.dimension(dimension).ccc,
            perturbed_ccc=perturbed_metrics.dimension(dimension).ccc, ccc_drop=drop,
            unchanged_share=float(unchanged[d]), passed_drop=passed_drop,
            passed_unchanged=passed_unchanged, passed=passed_drop and passed_unchanged))
    return PerturbationResult(name, description, parameters, tuple(dimensions),
                              all(d.passed for d in dimensions))
