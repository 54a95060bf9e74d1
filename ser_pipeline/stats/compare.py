"""Paired comparison of two models on the same clips, and the no-regression gate.

**Paired.** Both models are scored on the *same* resampled units in every resample, and
the interval is taken over the resampled differences ΔCCC = CCC(candidate) − CCC(baseline).
Clip difficulty then cancels out of the difference: a paired interval is much narrower
than the two models' own intervals suggest, and comparing those two intervals for overlap
is the wrong test.

**Verdicts.** "better" when the whole ΔCCC interval lies above 0, "worse" when it lies
below 0, else "not distinguishable". Not distinguishable is *absence of evidence*, not
evidence of equivalence: with few speakers, even a real 0.05 difference can land there.
The overall verdict is the same rule on the mean of the three dimensions' CCCs (the
leaderboard's ``ccc_mean``), bootstrapped with the same resamples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ser_pipeline.metrics import ccc as plain_ccc
from ser_pipeline.schemas import LABELS
from ser_pipeline.stats import core
from ser_pipeline.stats.core import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, Estimate

BETTER, WORSE, NOT_DISTINGUISHABLE = "better", "worse", "not distinguishable"


def verdict_of(delta: Estimate) -> str:
    """better / worse / not distinguishable from a ΔCCC interval (NaN: not distinguishable).

    Examples:
        >>> verdict_of(Estimate(0.05, 0.01, 0.09)), verdict_of(Estimate(0.0, -0.02, 0.03))
        ('better', 'not distinguishable')
    """
    if delta.lo > 0:
        return BETTER
    if delta.hi < 0:
        return WORSE
    return NOT_DISTINGUISHABLE


@dataclass(frozen=True)
class DimensionComparison(core.JsonResult):
    """ΔCCC = CCC(candidate) − CCC(baseline) for one dimension (or ``"mean"`` of the three).

    Attributes:
        dimension: arousal, dominance, valence, or mean.
        n: Clips both models and the reference have (pairs without NaN).
        ccc_candidate: The candidate's CCC.
        ccc_baseline: The baseline's CCC.
        delta: ΔCCC with its paired interval.
        verdict: better, worse or not distinguishable.
    """

    dimension: str
    n: int
    ccc_candidate: float
    ccc_baseline: float
    delta: Estimate
    verdict: str


@dataclass(frozen=True)
class PairedComparison(core.JsonResult):
    """Per-dimension and overall ΔCCC of a candidate against a baseline.

    Attributes:
        candidate: The candidate's name (for the summary).
        baseline: The baseline's name.
        resampling: How the intervals were obtained (shared by both models).
        dimensions: arousal, dominance, valence.
        overall: The mean of the three CCCs: its ΔCCC and verdict.
        verdict: ``overall.verdict``.
        summary: One line for a terminal or a log.
    """

    candidate: str
    baseline: str
    resampling: core.Resampling
    dimensions: tuple[DimensionComparison, ...]
    overall: DimensionComparison
    verdict: str
    summary: str

    def dimension(self, name: str) -> DimensionComparison:
        """The entry for ``name`` (a dimension or ``"mean"``)."""
        for entry in (*self.dimensions, self.overall):
            if entry.dimension == name:
                return entry
        raise KeyError(f"no dimension {name!r}; have {', '.join(LABELS)}, mean")


def compare_models(candidate: object, baseline: object, reference: object, *,
                   units: Sequence[object] | np.ndarray | None = None,
                   candidate_name: str = "candidate", baseline_name: str = "baseline",
                   level: float = DEFAULT_LEVEL, n_resamples: int = DEFAULT_RESAMPLES,
                   seed: int = DEFAULT_SEED) -> PairedComparison:
    """Paired bootstrap of ΔCCC = CCC(candidate) − CCC(baseline) on the same clips.

    A clip where either model or the reference is NaN is left out of that dimension for
    *both* models, so both are always scored on the same clips.

    Args:
        candidate: The candidate's predictions ``[n, 3]``.
        baseline: The baseline's predictions ``[n, 3]``, same clips and order.
        reference: References ``[n, 3]``.
        units: Speaker id per clip to resample speakers; None resamples clips.
        candidate_name: Name used in the summary.
        baseline_name: Name used in the summary.
        level: Confidence level.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        :class:`PairedComparison`.

    Raises:
        StatsError: Shapes differ or bad options.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> ref = rng.uniform(size=(300, 3))
        >>> good = ref + rng.normal(scale=0.05, size=ref.shape)
        >>> poor = ref + rng.normal(scale=0.3, size=ref.shape)
        >>> result = compare_models(good, poor, ref, candidate_name="v2", baseline_name="v1")
        >>> result.verdict, [d.verdict for d in result.dimensions]
        ('better', ['better', 'better', 'better'])
        >>> compare_models(poor, poor, ref).verdict
        'not distinguishable'
    """
    core.check_options(n_resamples, level)
    cand = core.as_matrix(candidate, "candidate predictions")
    base = core.as_matrix(baseline, "baseline predictions")
    ref = core.as_matrix(reference, "references")
    core.check_same_shape(candidate=cand, baseline=base, references=ref)
    missing = np.isnan(cand) | np.isnan(base) | np.isnan(ref)
    cand, base = np.where(missing, np.nan, cand), np.where(missing, np.nan, base)
    resolved = core.resolve_units(len(ref), units)
    sums = np.stack([core.unit_sums(cand, ref, resolved), core.unit_sums(base, ref, resolved)],
                    axis=1)  # [U, 2 models, 3 dims, 7]
    replicate_ccc = core.resampled_metrics(sums, n_resamples=n_resamples,
                                           seed=seed)[0]  # [B, 2, 3]
    point = np.array([[plain_ccc(m[:, d], ref[:, d]) for d in range(len(LABELS))]
                      for m in (cand, base)])  # [2, 3]
    n = sums[..., core.N].sum(axis=0)[0]
    # the overall comparison: mean of the three CCCs, NaN when any of them is undefined
    replicate_ccc = np.concatenate([replicate_ccc, replicate_ccc.mean(axis=-1, keepdims=True)],
                                   axis=-1)  # [B, 2, 4]
    point = np.concatenate([point, point.mean(axis=-1, keepdims=True)], axis=-1)
    replicate_delta = replicate_ccc[:, 0] - replicate_ccc[:, 1]
    point_delta = point[0] - point[1]
    lo, hi, undefined = core.percentile_interval(replicate_delta, level, point=point_delta,
                                                 n_units=resolved.n_units)
    entries = []
    for i, name in enumerate((*LABELS, "mean")):
        delta = core.estimate(point_delta[i], lo[i], hi[i], undefined[i])
        entries.append(DimensionComparison(
            dimension=name, n=int(n[i] if i < len(LABELS) else n.min()),
            ccc_candidate=float(point[0, i]), ccc_baseline=float(point[1, i]),
            delta=delta, verdict=verdict_of(delta)))
    resampling = core.Resampling(resolved.kind, resolved.n_units, n_resamples, level,
                                 core.METHOD, seed)
    overall = entries[-1]
    return PairedComparison(
        candidate=candidate_name, baseline=baseline_name, resampling=resampling,
        dimensions=tuple(entries[:-1]), overall=overall, verdict=overall.verdict,
        summary=_summary(candidate_name, baseline_name, entries, resampling))


def _signed(value: float) -> str:
    return "nan" if np.isnan(value) else f"{value:+.3f}"


def _summary(candidate: str, baseline: str, entries: list[DimensionComparison],
             resampling: core.Resampling) -> str:
    overall = entries[-1]
    parts = ", ".join(f"{e.dimension} {_signed(e.delta.value)} [{_signed(e.delta.lo)}, "
                      f"{_signed(e.delta.hi)}] {e.verdict}" for e in entries[:-1])
    head = {BETTER: f"{candidate} is better than {baseline}",
            WORSE: f"{candidate} is worse than {baseline}",
            NOT_DISTINGUISHABLE: f"{candidate} and {baseline} are not distinguishable"}
    return (f"{head[overall.verdict]} (mean ΔCCC {_signed(overall.delta.value)} "
            f"[{_signed(overall.delta.lo)}, {_signed(overall.delta.hi)}]); {parts}; "
            f"{resampling.level:.0%} paired {resampling.method} bootstrap over "
            f"{resampling.n_units} {resampling.unit}s")


# -- the no-regression gate -------------------------------------------------------------------
@dataclass(frozen=True)
class GateDecision(core.JsonResult):
    """Whether a candidate may become ``latest``.

    Attributes:
        passed: False when the candidate is significantly worse on some dimension.
        reason: One line saying why.
        regressed: The dimensions where it is significantly worse.
        undefined: Dimensions the gate could not judge (ΔCCC undefined, e.g. constant
            references); they do not block, and the reason names them.
        comparison: The paired comparison (None for the first version of a name).
    """

    passed: bool
    reason: str
    regressed: tuple[str, ...]
    undefined: tuple[str, ...]
    comparison: PairedComparison | None


def regression_gate(candidate: object, latest: object | None, reference: object, *,
                    units: Sequence[object] | np.ndarray | None = None,
                    candidate_name: str = "candidate", latest_name: str = "latest",
                    margin: float = 0.0, level: float = DEFAULT_LEVEL,
                    n_resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED) -> GateDecision:
    """Refuse a candidate that is significantly worse than ``latest`` on any dimension.

    A pure function of the predictions: "significantly worse" means the paired ΔCCC
    interval lies wholly below ``-margin``. Each dimension is a one-sided test at
    (1 − level)/2, so a candidate exactly as good as ``latest`` is wrongly refused at most
    about 3 × 2.5 % ≈ 7.5 % of the time at the default level (fewer, since the dimensions
    correlate). On a large gate set tiny real losses become significant: ``margin``
    tolerates losses smaller than it.

    Args:
        candidate: The candidate's predictions on the gate clips ``[n, 3]``.
        latest: The current latest version's predictions on the same clips, or None
            when the name has no version yet (the first version passes).
        reference: References for the gate clips ``[n, 3]``.
        units: Speaker id per clip (resample speakers) or None (clips).
        candidate_name: Name used in the reason.
        latest_name: Name used in the reason.
        margin: ΔCCC losses smaller than this never block (default 0).
        level: Confidence level of the paired intervals.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        :class:`GateDecision`.

    Raises:
        StatsError: No gate clips, shapes differ, or a negative margin.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> ref = rng.uniform(size=(300, 3))
        >>> good = ref + rng.normal(scale=0.05, size=ref.shape)
        >>> regression_gate(good, None, ref).reason
        'first version: no latest version to compare with'
        >>> worse = good.copy()
        >>> worse[:, 2] = rng.uniform(size=300)
        >>> decision = regression_gate(worse, good, ref, candidate_name="v3", latest_name="v2")
        >>> decision.passed, decision.regressed
        (False, ('valence',))
    """
    if margin < 0:
        raise core.StatsError(f"margin={margin!r}: give a ΔCCC tolerance >= 0")
    if latest is None:
        return GateDecision(True, "first version: no latest version to compare with",
                            (), (), None)
    ref = core.as_matrix(reference, "references")
    if len(ref) == 0:
        raise core.StatsError("the gate has no clips: check the gate corpus and split hold "
                              "clips with references")
    comparison = compare_models(candidate, latest, ref, units=units,
                                candidate_name=candidate_name, baseline_name=latest_name,
                                level=level, n_resamples=n_resamples, seed=seed)
    regressed = tuple(d.dimension for d in comparison.dimensions if d.delta.hi < -margin)
    undefined = tuple(d.dimension for d in comparison.dimensions
                      if np.isnan(d.delta.lo) or np.isnan(d.delta.hi))
    r = comparison.resampling
    basis = f"{r.level:.0%} paired bootstrap over {r.n_units} {r.unit}s"
    if regressed:
        worst = ", ".join(
            f"{d.dimension} ΔCCC {_signed(d.delta.value)} [{_signed(d.delta.lo)}, "
            f"{_signed(d.delta.hi)}]" for d in comparison.dimensions
            if d.dimension in regressed)
        reason = (f"{candidate_name} is significantly worse than {latest_name}: {worst} "
                  f"({basis})")
    else:
        reason = (f"{candidate_name} is not significantly worse than {latest_name} on any "
                  f"dimension (mean ΔCCC {_signed(comparison.overall.delta.value)}; {basis})")
        if undefined:
            reason += f"; not judged on {', '.join(undefined)}: ΔCCC undefined"
    return GateDecision(not regressed, reason, regressed, undefined, comparison)
