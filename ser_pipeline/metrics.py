"""Agreement metrics between predictions and references: CCC, Pearson r, MAE.

CCC is the paper's metric (Lin's concordance correlation coefficient with *population*
statistics), computed by :func:`audmetric.concordance_cc`::

    ccc = 2 * cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y)) ** 2)

Undefined values are ``NaN`` here, never an exception, and :mod:`ser_pipeline.evaluate`
stores them as SQL ``NULL`` so that DuckDB aggregates skip them (DuckDB sorts NaN above
every number, which would crown an undefined CCC as "best"):

============================  =======  =========  =======
case                          ccc      pearson    mae
============================  =======  =========  =======
n == 0                        NaN      NaN        NaN
n == 1                        NaN      NaN        defined
both constant and equal       NaN      NaN        0.0
one side constant, other not  0.0      NaN        defined
============================  =======  =========  =======

Pairs where either side is NaN are dropped first (and counted out of ``n``).
"""

from __future__ import annotations

import audmetric
import numpy as np

from ser_pipeline.schemas import LABELS


def _pairs(pred: object, ref: object) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if pred.shape != ref.shape:
        raise ValueError(
            f"predictions and references differ in length: {pred.size} vs {ref.size}"
        )
    keep = ~(np.isnan(pred) | np.isnan(ref))
    return pred[keep], ref[keep]


def ccc(pred: object, ref: object) -> float:
    """Concordance correlation coefficient (population statistics, via audmetric).

    Args:
        pred: predicted values.
        ref: reference values (teacher or human labels), same length.

    Returns:
        The CCC in [-1, 1]; NaN when it is undefined (fewer than 2 pairs, or both sides
        constant and equal).

    Examples:
        >>> round(ccc([0, 1, 1], [0, 1, 2]), 6)
        0.666667
        >>> ccc([0.5, 0.5, 0.5], [0, 1, 2])
        0.0
    """
    pred, ref = _pairs(pred, ref)
    if pred.size < 2:
        return float("nan")
    return float(audmetric.concordance_cc(ref, pred))


def pearson(pred: object, ref: object) -> float:
    """Pearson correlation; NaN with fewer than 2 pairs or a constant side.

    Examples:
        >>> round(pearson([0, 1, 1], [0, 1, 2]), 6)
        0.866025
    """
    pred, ref = _pairs(pred, ref)
    if pred.size < 2 or pred.std() == 0 or ref.std() == 0:
        return float("nan")
    return float(audmetric.pearson_cc(ref, pred))


def mae(pred: object, ref: object) -> float:
    """Mean absolute error; NaN when there are no pairs.

    Examples:
        >>> mae([0, 1, 1], [0, 1, 2])
        0.3333333333333333
    """
    pred, ref = _pairs(pred, ref)
    if pred.size == 0:
        return float("nan")
    return float(audmetric.mean_absolute_error(ref, pred))


def dimension_metrics(pred: object, ref: object) -> dict[str, dict[str, float]]:
    """CCC, Pearson r, MAE and n for each of arousal, dominance, valence.

    Args:
        pred: predictions ``[n, 3]`` ordered arousal, dominance, valence.
        ref: references ``[n, 3]`` in the same order.

    Returns:
        ``{"arousal": {"ccc", "pearson", "mae", "n"}, "dominance": ..., "valence": ...}``;
        ``n`` counts the pairs without NaN for that dimension.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, len(LABELS))
    ref = np.asarray(ref, dtype=np.float64).reshape(-1, len(LABELS))
    if pred.shape != ref.shape:
        raise ValueError(f"predictions {pred.shape} and references {ref.shape} differ in shape")
    result = {}
    for column, name in enumerate(LABELS):
        p, r = _pairs(pred[:, column], ref[:, column])
        result[name] = {"ccc": ccc(p, r), "pearson": pearson(p, r), "mae": mae(p, r),
                        "n": int(p.size)}
    return result
