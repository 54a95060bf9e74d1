"""Fairness slices: CCC per group (e.g. gender) with intervals, and the largest gap.

Each group is resampled on its own (a stratified bootstrap): a resample keeps every group
at its size in units, so no resample lacks a group. Within a group, speakers are
resampled when speaker ids are given, clips otherwise. Group ``k`` (in sorted order)
draws from ``np.random.default_rng([seed, k + 1])``.

The largest gap is, per dimension, the CCC of the best group minus that of the worst one,
both picked on the data as given; its interval bootstraps that difference for that pair.
With many groups the observed largest gap is biased upward (the pair was chosen because
it differed most); with two groups (the usual gender slice) there is no choice to bias it.

Where the clips carry no group column the result says so (``available=False``) instead of
inventing groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ser_pipeline.metrics import ccc as plain_ccc
from ser_pipeline.schemas import LABELS
from ser_pipeline.stats.core import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    METHOD,
    Estimate,
    JsonResult,
    Resampling,
    StatsError,
    as_matrix,
    check_options,
    check_same_shape,
    estimate,
    is_missing,
    metrics_from_sums,
    percentile_interval,
    resampled_totals,
    resolve_units,
    unit_sums,
)


@dataclass(frozen=True)
class GroupSlice(JsonResult):
    """One group's CCC per dimension (arousal, dominance, valence) with intervals."""

    group: str
    n_clips: int
    n_units: int
    ccc: tuple[Estimate, Estimate, Estimate]


@dataclass(frozen=True)
class GroupGap(JsonResult):
    """Largest CCC gap between groups for one dimension: best minus worst group."""

    dimension: str
    best_group: str
    worst_group: str
    gap: Estimate


@dataclass(frozen=True)
class FairnessSlices(JsonResult):
    """CCC per group and the largest gap per dimension, or why there are none.

    Attributes:
        attribute: The metadata column sliced on, e.g. ``"gender"``.
        available: False when no clip has a value for the attribute.
        reason: Why not available, or a note (one group only); empty otherwise.
        resampling: Unit kind, total units over groups, resamples, level, method, seed.
        slices: One per group, sorted by group.
        gaps: One per dimension where at least two groups have a defined CCC.
        clips_without_group: Clips left out because their group is unknown.
    """

    attribute: str
    available: bool
    reason: str
    resampling: Resampling | None
    slices: tuple[GroupSlice, ...]
    gaps: tuple[GroupGap, ...]
    clips_without_group: int


def fairness_slices(pred: object, ref: object, groups: Sequence[object] | None, *,
                    attribute: str = "gender",
                    units: Sequence[object] | np.ndarray | None = None,
                    level: float = DEFAULT_LEVEL, n_resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED) -> FairnessSlices:
    """CCC per group of ``attribute`` with intervals, and the largest gap with its interval.

    Args:
        pred: Predictions ``[n, 3]``.
        ref: References ``[n, 3]``, same clips and order.
        groups: The attribute's value per clip (None where unknown), or None when the
            corpus has no such column.
        attribute: The attribute's name, for the result and messages.
        units: Speaker id per clip (speakers resampled within each group), or None.
        level: Confidence level.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        :class:`FairnessSlices`.

    Raises:
        StatsError: Shapes or lengths differ, or one speaker's clips fall in two groups.

    Examples:
        >>> fairness_slices([[0.5] * 3], [[0.5] * 3], None).reason
        "no such metadata: the clips carry no 'gender' column, so no fairness slices"
        >>> rng = np.random.default_rng(0)
        >>> ref = rng.uniform(size=(200, 3))
        >>> pred = ref + rng.normal(scale=0.05, size=ref.shape)
        >>> pred[100:] = ref[100:] + rng.normal(scale=0.4, size=(100, 3))
        >>> result = fairness_slices(pred, ref, ["f"] * 100 + ["m"] * 100)
        >>> gap = result.gaps[0]
        >>> gap.best_group, gap.worst_group, bool(gap.gap.lo > 0)
        ('f', 'm', True)
    """
    check_options(n_resamples, level)
    pred, ref = as_matrix(pred, "predictions"), as_matrix(ref, "references")
    check_same_shape(predictions=pred, references=ref)
    if groups is None or all(is_missing(g) for g in groups):
        return FairnessSlices(attribute, False, f"no such metadata: the clips carry no "
                              f"{attribute!r} column, so no fairness slices", None, (), (),
                              len(pred))
    groups = list(groups)
    if len(groups) != len(pred):
        raise StatsError(f"got {len(groups)} {attribute} values for {len(pred)} clips; pass "
                         "one per clip (None where unknown)")
    speaker_ids = None if units is None else list(units)
    if speaker_ids is not None and len(speaker_ids) != len(pred):
        raise StatsError(f"got {len(speaker_ids)} speaker ids for {len(pred)} clips")
    if speaker_ids is not None:
        _check_one_group_per_speaker(groups, speaker_ids, attribute)
    names = sorted({str(g) for g in groups if not is_missing(g)})
    labels = np.array(["" if is_missing(g) else str(g) for g in groups], dtype=object)
    slices, replicates, total_units, kind = [], [], 0, "clip"
    for k, name in enumerate(names):
        rows = np.flatnonzero(labels == name)
        resolved = resolve_units(len(rows), None if speaker_ids is None
                                 else [speaker_ids[i] for i in rows])
        kind, total_units = resolved.kind, total_units + resolved.n_units
        sums = unit_sums(pred[rows], ref[rows], resolved)
        totals = resampled_totals(sums, n_resamples=n_resamples, seed=[seed, k + 1])
        reps = metrics_from_sums(totals)[0]  # [B, 3]
        point = np.array([plain_ccc(pred[rows, d], ref[rows, d]) for d in range(len(LABELS))])
        lo, hi, undefined = percentile_interval(reps, level, point=point,
                                                n_units=resolved.n_units)
        replicates.append((point, reps))
        slices.append(GroupSlice(name, len(rows), resolved.n_units, tuple(
            estimate(point[d], lo[d], hi[d], undefined[d])
            for d in range(len(LABELS)))))  # type: ignore[arg-type]
    gaps = []
    for d, dimension in enumerate(LABELS):
        defined = [k for k in range(len(names)) if not np.isnan(replicates[k][0][d])]
        if len(defined) < 2:
            continue
        best = max(defined, key=lambda k: replicates[k][0][d])
        worst = min(defined, key=lambda k: replicates[k][0][d])
        point_gap = replicates[best][0][d] - replicates[worst][0][d]
        reps_gap = replicates[best][1][:, d] - replicates[worst][1][:, d]
        lo, hi, undefined = percentile_interval(
            reps_gap, level, point=point_gap,
            n_units=min(slices[best].n_units, slices[worst].n_units))
        gaps.append(GroupGap(dimension, names[best], names[worst],
                             estimate(point_gap, lo, hi, undefined)))
    reason = (f"only one {attribute} group ({names[0]!r}): no gap to measure"
              if len(names) == 1 else "")
    resampling = Resampling(kind, total_units, n_resamples, level, METHOD, seed)
    return FairnessSlices(attribute, True, reason, resampling, tuple(slices), tuple(gaps),
                          int(sum(1 for g in groups if is_missing(g))))


def _check_one_group_per_speaker(groups: list, speakers: list, attribute: str) -> None:
    seen: dict[str, str] = {}
    for group, speaker in zip(groups, speakers, strict=True):
        if is_missing(group) or is_missing(speaker):
            continue
        previous = seen.setdefault(str(speaker), str(group))
        if previous != str(group):
            raise StatsError(
                f"speaker {str(speaker)!r} has clips with {attribute} {previous!r} and "
                f"{str(group)!r}; fix the speaker metadata, or slice without speaker ids "
                "(units=None) to resample clips")
