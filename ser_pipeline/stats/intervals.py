"""Confidence intervals for CCC, Pearson r and MAE: global and per-speaker.

**Which unit is resampled.** Clips of one speaker are not independent: they share a
voice, a microphone and often a mood. Resampling clips as if they were independent
makes intervals too narrow, most of all when a corpus has few speakers. So when a speaker
id is known per clip, whole speakers are resampled (a cluster bootstrap) and the result
says ``unit="speaker"``; otherwise clips are, and it says ``unit="clip"``.

**Why percentile intervals.** The percentile interval takes the ``(1−level)/2`` and
``(1+level)/2`` quantiles of the resampled statistic. It needs nothing beyond the
resamples, respects the statistic's range (a CCC interval never leaves [−1, 1]) and is
unchanged by monotone transforms (no need to pick Fisher's z for CCC). Its coverage can
fall short of the nominal level when the statistic is biased or skewed in small samples,
as CCC is near 1. **BCa** (bias-corrected and accelerated) would shift the two quantiles
by a bias term (the share of resamples below the point value) and an acceleration term
(the skewness of leave-one-unit-out jackknife values), which makes it second-order
accurate; with ~10 speakers, though, the jackknife rests on 10 values, and the
correction is itself noisy. See ``docs/stages/statistics.md``.

**Global versus per-speaker CCC.** The global CCC pools every clip (what ``metrics``
reports and the paper uses). The per-speaker figure averages the CCCs computed within
each speaker: it ignores between-speaker differences in mean and spread, and papers that
report one or the other are not comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ser_pipeline.metrics import dimension_metrics
from ser_pipeline.schemas import LABELS
from ser_pipeline.stats import core
from ser_pipeline.stats.core import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate


@dataclass(frozen=True)
class DimensionIntervals(core.JsonResult):
    """One dimension's metrics with intervals.

    Attributes:
        dimension: arousal, dominance or valence.
        n: Clips scored (pairs without NaN).
        ccc: Concordance correlation coefficient (audmetric's, population statistics).
        pearson: Pearson r.
        mae: Mean absolute error.
    """

    dimension: str
    n: int
    ccc: Estimate
    pearson: Estimate
    mae: Estimate


@dataclass(frozen=True)
class MetricIntervals(core.JsonResult):
    """Global CCC, Pearson r and MAE per dimension, each with a bootstrap interval."""

    resampling: core.Resampling
    dimensions: tuple[DimensionIntervals, ...]

    def dimension(self, name: str) -> DimensionIntervals:
        """The entry for ``name`` (arousal, dominance or valence)."""
        for entry in self.dimensions:
            if entry.dimension == name:
                return entry
        raise KeyError(f"no dimension {name!r}; have {', '.join(LABELS)}")

    def metric_columns(self, name: str) -> dict[str, object]:
        """The interval columns of one ``metrics`` row (NaN as None), e.g.
        ``{"ccc_lo": .., "ccc_hi": .., "level": 0.95, "method": "percentile",
        "n_units": 10, "unit": "speaker", ...}``."""
        entry, r = self.dimension(name), self.resampling
        return {
            "ccc_lo": core.finite_or_none(entry.ccc.lo),
            "ccc_hi": core.finite_or_none(entry.ccc.hi),
            "pearson_lo": core.finite_or_none(entry.pearson.lo),
            "pearson_hi": core.finite_or_none(entry.pearson.hi),
            "mae_lo": core.finite_or_none(entry.mae.lo),
            "mae_hi": core.finite_or_none(entry.mae.hi),
            "level": r.level, "method": r.method, "n_units": r.n_units, "unit": r.unit,
            "n_resamples": r.n_resamples, "seed": r.seed,
        }


def bootstrap_metrics(pred: object, ref: object, *,
                      units: Sequence[object] | np.ndarray | None = None,
                      level: float = DEFAULT_LEVEL, n_resamples: int = DEFAULT_RESAMPLES,
                      seed: int = DEFAULT_SEED) -> MetricIntervals:
    """CCC, Pearson r and MAE per dimension with percentile bootstrap intervals.

    Point values are ``metrics.dimension_metrics`` (audmetric), exactly what a ``metrics``
    row holds. Each resample draws as many units as there are, with replacement, from
    ``np.random.default_rng(seed)`` (:mod:`ser_pipeline.stats.core` gives the exact
    draws), so the same inputs give the same interval.

    Args:
        pred: Predictions ``[n, 3]`` (arousal, dominance, valence).
        ref: References ``[n, 3]`` for the same clips in the same order.
        units: A speaker id per clip to resample speakers (clips without an id are units
            of their own); None resamples clips.
        level: Confidence level.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        :class:`MetricIntervals`. Intervals are NaN where the statistic is undefined, with
        fewer than 2 units, or when fewer than half the resamples define it.

    Raises:
        StatsError: Shapes differ, ``units`` has the wrong length, bad ``level`` or
            ``n_resamples``.

    Examples:
        >>> rng = np.random.default_rng(1)
        >>> ref = rng.uniform(size=(200, 3))
        >>> pred = ref + rng.normal(scale=0.1, size=(200, 3))
        >>> result = bootstrap_metrics(pred, ref, units=[f"s{i % 8}" for i in range(200)])
        >>> result.resampling.unit, result.resampling.n_units, result.resampling.method
        ('speaker', 8, 'percentile')
        >>> ccc = result.dimension("arousal").ccc
        >>> bool(ccc.lo < ccc.value < ccc.hi)
        True
    """
    pred, ref = core.checked_pair(pred, ref, n_resamples=n_resamples, level=level)
    resolved = core.resolve_units(len(pred), units)
    replicates = np.stack(core.resampled_metrics(core.unit_sums(pred, ref, resolved),
                                                 n_resamples=n_resamples, seed=seed),
                          axis=-1)  # [B, 3 dims, 3 metrics]
    points = dimension_metrics(pred, ref)
    point = np.array([[points[d][m] for m in ("ccc", "pearson", "mae")] for d in LABELS])
    lo, hi, undefined = core.percentile_interval(replicates, level, point=point,
                                                 n_units=resolved.n_units)
    dimensions = tuple(
        DimensionIntervals(
            dimension=d, n=int(points[d]["n"]),
            **{m: core.estimate(point[i, j], lo[i, j], hi[i, j], undefined[i, j])
               for j, m in enumerate(("ccc", "pearson", "mae"))})
        for i, d in enumerate(LABELS))
    resampling = core.Resampling(resolved.kind, resolved.n_units, n_resamples, level,
                                 core.METHOD, seed)
    return MetricIntervals(resampling, dimensions)


# -- per-speaker CCC --------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeakerCCC(core.JsonResult):
    """One speaker's CCC per dimension (NaN where undefined) over its clips."""

    speaker: str
    n_clips: int
    ccc: tuple[float, float, float]


@dataclass(frozen=True)
class PerSpeakerDimension(core.JsonResult):
    """The mean of per-speaker CCCs for one dimension.

    Attributes:
        dimension: arousal, dominance or valence.
        mean_ccc: Mean over the speakers whose CCC is defined, with its interval
            (speakers resampled).
        n_speakers: Speakers in the mean.
        excluded: Speakers left out: fewer than 2 scored clips, or both sides constant
            and equal (CCC undefined, as in ``metrics.py``). A speaker whose predictions
            alone are constant has CCC 0 and stays in.
    """

    dimension: str
    mean_ccc: Estimate
    n_speakers: int
    excluded: tuple[str, ...]


@dataclass(frozen=True)
class PerSpeakerCCC(core.JsonResult):
    """Mean per-speaker CCC per dimension, or why it is not available.

    Attributes:
        available: False when the clips carry no speaker ids.
        reason: Why not available (empty when available).
        resampling: How the intervals were obtained (None when not available).
        dimensions: One entry per dimension.
        speakers: Every speaker's own CCCs, sorted by speaker.
        clips_without_speaker: Clips left out because their speaker is unknown.
    """

    available: bool
    reason: str
    resampling: core.Resampling | None
    dimensions: tuple[PerSpeakerDimension, ...]
    speakers: tuple[SpeakerCCC, ...]
    clips_without_speaker: int

    def dimension(self, name: str) -> PerSpeakerDimension:
        """The entry for ``name``; KeyError when not available."""
        for entry in self.dimensions:
            if entry.dimension == name:
                return entry
        raise KeyError(f"no per-speaker entry for {name!r}: {self.reason or 'unknown'}")


def per_speaker_ccc(pred: object, ref: object, speakers: Sequence[object] | None, *,
                    level: float = DEFAULT_LEVEL, n_resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED) -> PerSpeakerCCC:
    """The mean of per-speaker CCCs per dimension, with an interval over speakers.

    Each speaker's CCC uses only its own clips (population statistics, as
    ``metrics.ccc``). The interval resamples speakers: resample ``b`` averages the
    defined CCCs of the speakers it drew, counting a speaker as often as it was drawn.

    Args:
        pred: Predictions ``[n, 3]``.
        ref: References ``[n, 3]``, same clips and order.
        speakers: Speaker id per clip (None where unknown), or None.
        level: Confidence level.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        :class:`PerSpeakerCCC`; ``available=False`` with a reason when no clip has a
        speaker id, rather than treating clips as speakers.

    Examples:
        >>> per_speaker_ccc([[0.1, 0.2, 0.3]] * 2, [[0.2, 0.2, 0.2]] * 2, None).reason
        'no speaker metadata: per-speaker CCC needs a speaker id per clip'
        >>> rng = np.random.default_rng(0)
        >>> ref = rng.uniform(size=(60, 3))
        >>> spk = [f"s{i % 6}" for i in range(60)] + [None]
        >>> result = per_speaker_ccc(np.vstack([ref, [[0.5] * 3]]),
        ...                          np.vstack([ref, [[0.1] * 3]]), spk)
        >>> result.dimension("valence").n_speakers, result.clips_without_speaker
        (6, 1)
        >>> round(result.dimension("valence").mean_ccc.value, 6)
        1.0
    """
    pred, ref = core.checked_pair(pred, ref, n_resamples=n_resamples, level=level)
    if speakers is None:
        known = np.zeros(len(pred), dtype=bool)
    else:
        speakers = list(speakers)
        if len(speakers) != len(pred):
            raise core.StatsError(f"got {len(speakers)} speaker ids for {len(pred)} clips; "
                                  "pass one id per clip (None where unknown)")
        known = np.array([not core.is_missing(s) for s in speakers], dtype=bool)
    if not known.any():
        return PerSpeakerCCC(False, "no speaker metadata: per-speaker CCC needs a speaker id "
                             "per clip", None, (), (), int(len(pred)))
    kept = [s for s, k in zip(speakers, known, strict=True) if k]  # type: ignore[arg-type]
    resolved = core.resolve_units(len(kept), kept)
    clips_per_speaker = np.bincount(resolved.index, minlength=resolved.n_units)
    per_speaker = _exact_speaker_ccc(pred[known], ref[known], resolved.index,
                                     resolved.n_units)
    defined = ~np.isnan(per_speaker)  # [U, 3]
    stacked = np.stack([np.where(defined, per_speaker, 0.0), defined.astype(np.float64)],
                       axis=-1)  # [U, 3, 2]
    totals = core.resampled_totals(stacked, n_resamples=n_resamples, seed=seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = totals[..., 0] / totals[..., 1]  # [B, 3]; 0/0 = NaN: none defined
        point = np.where(defined.any(axis=0),
                         np.nansum(np.where(defined, per_speaker, 0), axis=0)
                         / defined.sum(axis=0), np.nan)
    lo, hi, undefined = core.percentile_interval(replicates, level, point=point,
                                                 n_units=resolved.n_units)
    dimensions = tuple(
        PerSpeakerDimension(
            dimension=d, mean_ccc=core.estimate(point[i], lo[i], hi[i], undefined[i]),
            n_speakers=int(defined[:, i].sum()),
            excluded=tuple(name for name, ok in zip(resolved.names, defined[:, i],
                                                    strict=True) if not ok))
        for i, d in enumerate(LABELS))
    speakers_out = tuple(
        SpeakerCCC(name, int(clips_per_speaker[u]),
                   tuple(float(v) for v in per_speaker[u]))  # type: ignore[arg-type]
        for u, name in enumerate(resolved.names))
    resampling = core.Resampling("speaker", resolved.n_units, n_resamples, level, core.METHOD,
                                 seed)
    return PerSpeakerCCC(True, "", resampling, dimensions, speakers_out,
                         int((~known).sum()))


def _exact_speaker_ccc(pred: np.ndarray, ref: np.ndarray, index: np.ndarray,
                       n_units: int) -> np.ndarray:
    """``[U, 3]`` per-speaker CCC by ``metrics.ccc``'s own definition (audmetric)."""
    from ser_pipeline.metrics import ccc

    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(n_units + 1))
    out = np.full((n_units, len(LABELS)), np.nan)
    for u in range(n_units):
        rows = order[bounds[u]:bounds[u + 1]]
        for d in range(len(LABELS)):
            out[u, d] = ccc(pred[rows, d], ref[rows, d])
    return out
