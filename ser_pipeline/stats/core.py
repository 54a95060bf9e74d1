"""The resampling machinery every bootstrap in :mod:`ser_pipeline.stats` shares.

Three ideas make a 1,000-resample bootstrap of 10,000 clips cost a fraction of a second:

1. **Per-unit sufficient statistics.** CCC, Pearson r and MAE of any set of clips follow
   from seven sums over those clips: ``n, Σx, Σy, Σx², Σy², Σxy, Σ|x−y|`` (``x`` the
   prediction, ``y`` the reference). :func:`unit_sums` adds them up per resampling unit
   (a speaker, or a clip) and per dimension.
2. **A resample-count matrix.** Resample ``b`` draws ``U`` units with replacement; row ``b``
   of the count matrix ``C`` (``B × U``) says how often each unit was drawn. The sums of
   every resample are then one matrix product, ``C @ sums``.
3. **Percentile intervals** over the ``B`` resampled values (:func:`percentile_interval`).

The draws are a documented contract, so that a plain loop can reproduce them (the tests do):
resample ``b`` is the ``b``-th call of ``rng.integers(0, U, U)`` on
``rng = np.random.default_rng(seed)``, and its units are those indices into the units
sorted by name (:func:`resolve_units`).

Examples:
    >>> units = resolve_units(4, ["s2", "s1", "s2", None])
    >>> units.kind, units.names, units.index.tolist()
    ('speaker', ('s1', 's2', '<clip 3>'), [1, 0, 1, 2])
    >>> next(resample_counts(3, 2, seed=0)).tolist()
    [[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ser_pipeline.schemas import LABELS

#: The interval method every result names (see :func:`percentile_interval`).
METHOD = "percentile"
DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0

#: A variance below this fraction of its side's second moment counts as zero: the sums
#: round at about 1e-16 relative (1e-12 after 10,000 additions), so a resample that holds
#: one clip many times must read as constant, as ``metrics.py`` sees it, not as 1e-18.
FLAT_TOLERANCE = 1e-10

#: An interval needs at least this share of resamples where the statistic is defined.
MIN_DEFINED_SHARE = 0.5

# Columns of the per-unit sufficient statistics, per dimension.
N, SX, SY, SXX, SYY, SXY, SABS = range(7)
N_SUMS = 7

# Rows of the count matrix built per block: bounds memory at about 16 MB whatever U is.
_BLOCK_CELLS = 2_000_000


class StatsError(ValueError):
    """Inputs a statistic cannot be computed from; the message names the input and the fix."""


# -- results ------------------------------------------------------------------------------
def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: undefined values become ``None`` (SQL ``NULL``)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _jsonable(value: object) -> object:
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class JsonResult:
    """Mixin for result dataclasses: ``to_dict()`` gives plain JSON types, NaN as None."""

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))  # type: ignore[call-overload, return-value]


@dataclass(frozen=True)
class Resampling(JsonResult):
    """How an interval was obtained.

    Attributes:
        unit: ``"speaker"`` (cluster bootstrap) or ``"clip"``.
        n_units: Units resampled: each resample draws this many, with replacement.
        n_resamples: Bootstrap resamples ``B``.
        level: Confidence level, e.g. 0.95.
        method: ``"percentile"``.
        seed: Seed of ``np.random.default_rng``: the same inputs and seed give the same
            interval.
    """

    unit: str
    n_units: int
    n_resamples: int
    level: float
    method: str
    seed: int


@dataclass(frozen=True)
class Estimate(JsonResult):
    """A point value with its bootstrap interval (NaN where undefined).

    Attributes:
        value: The statistic on the data as given.
        lo: Lower bound of the interval.
        hi: Upper bound of the interval.
        undefined_resamples: Resamples where the statistic was undefined (NaN), e.g. a
            resample of one constant speaker; they are left out of the percentiles.
    """

    value: float
    lo: float
    hi: float
    undefined_resamples: int = 0

    def excludes_zero(self) -> bool:
        """True when the whole interval lies above or below 0."""
        return bool(self.lo > 0 or self.hi < 0)


# -- units ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Units:
    """Which resampling unit each clip belongs to.

    Attributes:
        kind: ``"speaker"`` or ``"clip"``.
        names: Unit names in resampling order (sorted; clips without a speaker last).
        index: ``int [n_clips]``: each clip's position in ``names``.
    """

    kind: str
    names: tuple[str, ...]
    index: np.ndarray

    @property
    def n_units(self) -> int:
        return len(self.names)


def is_missing(value: object) -> bool:
    """No speaker/group id: None, NaN or the empty string."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def resolve_units(n_clips: int, units: Sequence[object] | np.ndarray | None) -> Units:
    """Resampling units for ``n_clips`` clips: one per distinct speaker, else one per clip.

    A clip without a speaker id (None, NaN or "") is a unit of its own: it cannot be tied
    to any other clip, and dropping it would lose data.

    Args:
        n_clips: Number of clips.
        units: A speaker id per clip, or None to resample clips.

    Raises:
        StatsError: ``units`` does not have one entry per clip.

    Examples:
        >>> resolve_units(3, None).names
        ('0', '1', '2')
    """
    if units is None:
        return Units("clip", tuple(str(i) for i in range(n_clips)), np.arange(n_clips))
    ids = list(units)
    if len(ids) != n_clips:
        raise StatsError(f"got {len(ids)} speaker ids for {n_clips} clips; pass one id per "
                         "clip (None where unknown), or units=None to resample clips")
    named = sorted({str(u) for u in ids if not is_missing(u)})
    position = {name: i for i, name in enumerate(named)}
    index = np.empty(n_clips, dtype=np.int64)
    names = list(named)
    for clip, unit in enumerate(ids):
        if is_missing(unit):
            index[clip] = len(names)
            names.append(f"<clip {clip}>")
        else:
            index[clip] = position[str(unit)]
    return Units("speaker", tuple(names), index)


# -- sufficient statistics ------------------------------------------------------------------
def as_matrix(values: object, name: str) -> np.ndarray:
    """``float64 [n, 3]`` (arousal, dominance, valence) from anything array-like."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1 and array.size % len(LABELS) == 0:
        array = array.reshape(-1, len(LABELS))
    if array.ndim != 2 or array.shape[1] != len(LABELS):
        raise StatsError(f"{name} has shape {array.shape}; expected [n_clips, 3] ordered "
                         f"{', '.join(LABELS)}")
    return array


def check_same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise StatsError("the inputs must hold the same clips in the same order; got shapes "
                         + ", ".join(f"{n} {s}" for n, s in shapes.items()))


def unit_sums(pred: np.ndarray, ref: np.ndarray, units: Units) -> np.ndarray:
    """Per-unit sufficient statistics ``[U, 3, 7]`` (dimension, then N, Σx, Σy, Σx², Σy²,
    Σxy, Σ|x−y|).

    Clips where the prediction or the reference is NaN are left out of that dimension,
    as ``metrics.py`` drops such pairs. Both sides are shifted by one common constant per
    dimension (their joint mean) before squaring: CCC and MAE do not change under a shift
    of both sides, Pearson r under any shift, and the raw sums lose far less precision.

    Examples:
        >>> sums = unit_sums(np.ones((2, 3)), np.zeros((2, 3)), resolve_units(2, ["a", "a"]))
        >>> sums.shape, sums[0, 0].tolist()
        ((1, 3, 7), [2.0, 1.0, -1.0, 0.5, 0.5, -0.5, 2.0])
    """
    keep = ~(np.isnan(pred) | np.isnan(ref))
    x = np.where(keep, pred, 0.0)
    y = np.where(keep, ref, 0.0)
    counts = keep.sum(axis=0)
    shift = np.divide(x.sum(axis=0) + y.sum(axis=0), 2 * counts,
                      out=np.zeros(len(LABELS)), where=counts > 0)
    x = np.where(keep, x - shift, 0.0)
    y = np.where(keep, y - shift, 0.0)
    columns = (keep.astype(np.float64), x, y, x * x, y * y, x * y, np.abs(x - y))
    out = np.empty((units.n_units, len(LABELS), N_SUMS))
    for k, column in enumerate(columns):
        for d in range(len(LABELS)):
            out[:, d, k] = np.bincount(units.index, weights=column[:, d],
                                       minlength=units.n_units)
    return out


def metrics_from_sums(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CCC, Pearson r and MAE from summed sufficient statistics ``[..., 7]``.

    Follows ``metrics.py``'s rules for undefined values: CCC is NaN with fewer than 2
    pairs or both sides constant and equal, and 0 with one side constant; Pearson r is
    NaN with fewer than 2 pairs or a constant side; MAE is NaN with no pairs.

    Examples:
        >>> x, y = np.array([0.0, 1, 1]), np.array([0.0, 1, 2])
        >>> s = np.array([3, x.sum(), y.sum(), x @ x, y @ y, x @ y, np.abs(x - y).sum()])
        >>> [round(float(v), 6) for v in metrics_from_sums(s)]
        [0.666667, 0.866025, 0.333333]
    """
    n = sums[..., N]
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = sums[..., SX] / n, sums[..., SY] / n
        m2x, m2y = sums[..., SXX] / n, sums[..., SYY] / n
        vx, vy = m2x - mx * mx, m2y - my * my
        flat_x = vx <= FLAT_TOLERANCE * m2x
        flat_y = vy <= FLAT_TOLERANCE * m2y
        vx, vy = np.where(flat_x, 0.0, vx), np.where(flat_y, 0.0, vy)
        cov = np.where(flat_x | flat_y, 0.0, sums[..., SXY] / n - mx * my)
        d2 = (mx - my) ** 2
        d2 = np.where(d2 <= FLAT_TOLERANCE * (m2x + m2y), 0.0, d2)
        denominator = vx + vy + d2
        too_few = ~(n >= 2)
        ccc = np.where(too_few | ~(denominator > 0), np.nan, 2 * cov / denominator)
        pearson = np.where(too_few | flat_x | flat_y, np.nan,
                           np.clip(cov / np.sqrt(vx * vy), -1.0, 1.0))
        mae = np.where(n > 0, sums[..., SABS] / n, np.nan)
    return ccc, pearson, mae


# -- resampling -----------------------------------------------------------------------------
def check_options(n_resamples: int, level: float) -> None:
    """Reject a non-positive resample count or a level outside (0, 1), naming the fix."""
    if not (isinstance(n_resamples, (int, np.integer)) and n_resamples >= 1):
        raise StatsError(f"n_resamples={n_resamples!r}: give a positive integer "
                         f"(default {DEFAULT_RESAMPLES})")
    if not 0 < level < 1:
        raise StatsError(f"level={level!r}: give a confidence level between 0 and 1, "
                         "e.g. 0.95")


def checked_pair(pred: object, ref: object, *, n_resamples: int,
                 level: float) -> tuple[np.ndarray, np.ndarray]:
    """What every bootstrap of predictions against references checks first: the options,
    then both as ``float64 [n, 3]`` matrices of one shape.

    Examples:
        >>> pred, ref = checked_pair([0.1, 0.2, 0.3], [[0.2, 0.2, 0.2]], n_resamples=10,
        ...                          level=0.9)
        >>> pred.shape, ref.shape
        ((1, 3), (1, 3))
    """
    check_options(n_resamples, level)
    pred, ref = as_matrix(pred, "predictions"), as_matrix(ref, "references")
    check_same_shape(predictions=pred, references=ref)
    return pred, ref


def resample_counts(n_units: int, n_resamples: int, *,
                    seed: int | Sequence[int]) -> Iterator[np.ndarray]:
    """Blocks of the resample-count matrix, ``float64 [rows, n_units]``, in order.

    Row ``b`` counts the units drawn by the ``b``-th ``rng.integers(0, n_units, n_units)``
    with ``rng = np.random.default_rng(seed)``; drawing a block at once gives the same
    numbers as drawing its rows one by one.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, min(n_resamples, _BLOCK_CELLS // max(n_units, 1)))
    for start in range(0, n_resamples, rows):
        block = min(rows, n_resamples - start)
        drawn = rng.integers(0, n_units, size=(block, n_units))
        drawn += np.arange(block)[:, None] * n_units
        yield np.bincount(drawn.ravel(), minlength=block * n_units).reshape(
            block, n_units).astype(np.float64)


def resampled_totals(per_unit: np.ndarray, *, n_resamples: int,
                     seed: int | Sequence[int]) -> np.ndarray:
    """``[B, ...]``: the per-unit quantities ``[U, ...]`` summed over each resample's units.

    Examples:
        >>> resampled_totals(np.array([1.0, 10.0, 100.0]), n_resamples=2, seed=0).tolist()
        [120.0, 3.0]
    """
    n_units = per_unit.shape[0]
    if n_units == 0:  # nothing to draw: every resample sums to zero (statistics undefined)
        return np.zeros((n_resamples, *per_unit.shape[1:]))
    flat = per_unit.reshape(n_units, -1)
    blocks = [counts @ flat for counts in resample_counts(n_units, n_resamples, seed=seed)]
    return np.concatenate(blocks).reshape(n_resamples, *per_unit.shape[1:])


def resampled_metrics(per_unit_sums: np.ndarray, *, n_resamples: int,
                      seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ccc, pearson, mae)``, each ``[B, ...]``: the metrics of every resample of the
    units whose sufficient statistics (:func:`unit_sums`, ``[U, ..., 7]``) are given."""
    return metrics_from_sums(resampled_totals(per_unit_sums, n_resamples=n_resamples,
                                              seed=seed))


def percentile_interval(replicates: np.ndarray, level: float, *,
                        point: np.ndarray | float | None = None, n_units: int = 2,
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over axis 0: ``(lo, hi, undefined_resamples)``.

    Undefined (NaN) resamples are left out and counted. The interval is NaN where the
    point value is NaN, where fewer than 2 units were resampled (every resample would be
    the data itself, a zero-width interval that claims certainty), or where fewer than
    :data:`MIN_DEFINED_SHARE` of the resamples are defined.

    Examples:
        >>> lo, hi, bad = percentile_interval(np.arange(101.0), 0.9)
        >>> round(float(lo), 9), round(float(hi), 9), int(bad)
        (5.0, 95.0, 0)
    """
    replicates = np.asarray(replicates, dtype=np.float64)
    undefined = np.isnan(replicates).sum(axis=0)
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():  # all-NaN slices (undefined statistics) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
    bad = undefined > (1 - MIN_DEFINED_SHARE) * replicates.shape[0]
    if point is not None:
        bad = bad | np.isnan(np.asarray(point, dtype=np.float64))
    if n_units < 2:
        bad = np.ones_like(bad, dtype=bool)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi), undefined


def estimate(value: float, lo: float, hi: float, undefined: int) -> Estimate:
    return Estimate(float(value), float(lo), float(hi), int(undefined))
