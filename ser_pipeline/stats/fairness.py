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
from ser_pipeline.stats import core
from ser_pipeline.stats.core import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate


@dataclass(frozen=True)
class GroupSlice(core.JsonResult):
    """One group's CCC per dimension (arousal, dominance, valence) with intervals."""

    group: str
    n_clips: int
    n_units: int
    ccc: tuple[Estimate, Estimate, Estimate]


@dataclass(frozen=True)
class GroupGap(core.JsonResult):
    """Largest CCC gap between groups for one dimension: best minus worst group."""

    dimension: str
    best_group: str
    worst_group: str
    gap: Estimate


@dataclass(frozen=True)
class FairnessSlices(core.JsonResult):
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
    resampling: core.Resampling | None
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
    pred, ref = core.checked_pair(pred, ref, n_resamples=n_resamples, level=level)
    if groups is None or all(core.is_missing(g) for g in groups):
        return FairnessSlices(attribute, False, f"no such metadata: the clips carry no "
                              f"{attribute!r} column, so no fairness slices", None, (), (),
                              len(pred))
    groups = list(groups)
    if len(groups) != len(pred):
        raise core.StatsError(f"got {len(groups)} {attribute} values for {len(pred)} clips; "
                              "pass one per clip (None where unknown)")
    speaker_ids = None if units is None else list(units)
    if speaker_ids is not None and len(speaker_ids) != len(pred):
        raise core.StatsError(f"got {len(speaker_ids)} speaker ids for {len(pred)} clips")
    if speaker_ids is not None:
        _check_one_group_per_speaker(groups, speaker_ids, attribute)
    names = sorted({str(g) for g in groups if not core.is_missing(g)})
    labels = np.array(["" if core.is_missing(g) else str(g) for g in groups], dtype=object)
    slices, replicates, total_units, kind = [], [], 0, "clip"
    for k, name in enumerate(names):
        rows = np.flatnonzero(labels == name)
        resolved = core.resolve_units(len(rows), None if speaker_ids is None
                                      else [speaker_ids[i] for i in rows])
        kind, total_units = resolved.kind, total_units + resolved.n_units
        sums = core.unit_sums(pred[rows], ref[rows], resolved)
        reps = core.resampled_metrics(sums, n_resamples=n_resamples, seed=[seed, k + 1])[0]
        point = np.array([plain_ccc(pred[rows, d], ref[rows, d]) for d in range(len(LABELS))])
        lo, hi, undefined = core.percentile_interval(reps, level, point=point,
                                                     n_units=resolved.n_units)
        replicates.append((point, reps))
        slices.append(GroupSlice(name, len(rows), resolved.n_units, tuple(
            core.estimate(point[d], lo[d], hi[d], undefined[d])
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
        lo, hi, undefined = core.percentile_interval(
            reps_gap, level, point=point_gap,
            n_units=min(slices[best].n_units, slices[worst].n_units))
        gaps.append(GroupGap(dimension, names[best], names[worst],
                             core.estimate(point_gap, lo, hi, undefined)))
    reason = (f"only one {attribute} group ({names[0]!r}): no gap to measure"
              if len(names) == 1 else "")
    resampling = core.Resampling(kind, total_units, n_resamples, level, core.METHOD, seed)
    return FairnessSlices(attribute, True, reason, resampling, tuple(slices), tuple(gaps),
                          int(sum(1 for g in groups if core.is_missing(g))))


def _check_one_group_per_speaker(groups: list, speakers: list, attribute: str) -> None:
    seen: dict[str, str] = {}
    for group, speaker in zip(groups, speakers, strict=True):
        if core.is_missing(group) or core.is_missing(speaker):
            continue
        previous = seen.setdefault(str(speaker), str(group))
        if previous != str(group):
            raise core.StatsError(
                f"speaker {str(speaker)!r} has clips with {attribute} {previous!r} and "
                f"{str(group)!r}; fix the speaker metadata, or slice without speaker ids "
                "(units=None) to resample clips")
