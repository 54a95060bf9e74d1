"""Figures with their uncertainty: bootstrap intervals, paired comparisons, fairness slices.

One concept per module, re-exported here:

* :mod:`~ser_pipeline.stats.core`: per-unit sufficient statistics, the resample-count
  matrix and percentile intervals that every function below shares.
* :mod:`~ser_pipeline.stats.intervals`: :func:`bootstrap_metrics` (global CCC, Pearson r,
  MAE per dimension) and :func:`per_speaker_ccc` (mean of per-speaker CCCs).
* :mod:`~ser_pipeline.stats.compare`: :func:`compare_models` (paired ΔCCC with verdicts)
  and :func:`regression_gate` (may a candidate become ``latest``?).
* :mod:`~ser_pipeline.stats.fairness`: :func:`fairness_slices` (CCC per group, largest gap).

Defaults everywhere: 95 % level, 1,000 resamples, seed 0, percentile method; speakers are
resampled when speaker ids are given, clips otherwise, and every result says which
(``resampling.unit``) and how many (``resampling.n_units``). Every result is a frozen
dataclass with ``to_dict()`` (JSON types, NaN as None). The methods and their limits are
in ``docs/stages/statistics.md``.

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.uniform(size=(100, 3))
    >>> result = bootstrap_metrics(ref + rng.normal(scale=0.1, size=ref.shape), ref)
    >>> sorted(result.metric_columns("arousal"))[:4]
    ['ccc_hi', 'ccc_lo', 'level', 'mae_hi']
"""

from ser_pipeline.stats.compare import (
    BETTER,
    NOT_DISTINGUISHABLE,
    WORSE,
    DimensionComparison,
    GateDecision,
    PairedComparison,
    compare_models,
    regression_gate,
    verdict_of,
)
from ser_pipeline.stats.core import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    METHOD,
    Estimate,
    Resampling,
    StatsError,
)
from ser_pipeline.stats.fairness import FairnessSlices, GroupGap, GroupSlice, fairness_slices
from ser_pipeline.stats.intervals import (
    DimensionIntervals,
    MetricIntervals,
    PerSpeakerCCC,
    PerSpeakerDimension,
    SpeakerCCC,
    bootstrap_metrics,
    per_speaker_ccc,
)

__all__ = [
    "BETTER", "DEFAULT_LEVEL", "DEFAULT_RESAMPLES", "DEFAULT_SEED", "METHOD",
    "NOT_DISTINGUISHABLE", "WORSE", "DimensionComparison", "DimensionIntervals", "Estimate",
    "FairnessSlices", "GateDecision", "GroupGap", "GroupSlice", "MetricIntervals",
    "PairedComparison", "PerSpeakerCCC", "PerSpeakerDimension", "Resampling", "SpeakerCCC",
    "StatsError", "bootstrap_metrics", "compare_models", "fairness_slices", "per_speaker_ccc",
    "regression_gate", "verdict_of",
]
