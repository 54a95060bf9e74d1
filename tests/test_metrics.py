"""CCC, Pearson and MAE against hand-computed values and their documented edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ser_pipeline.metrics import ccc, dimension_metrics, mae, pearson


def test_ccc_hand_computed_population_statistics() -> None:
    # pred [0,1,1], ref [0,1,2]: cov_pop = 1/3, var_pop 2/9 and 2/3, mean gap 1/3
    # -> 2*(1/3) / (2/9 + 6/9 + 1/9) = 2/3
    assert ccc([0, 1, 1], [0, 1, 2]) == pytest.approx(2 / 3, abs=1e-12)
    # a constant offset of 1: 2*(2/3) / (2/3 + 2/3 + 1) = 4/7
    assert ccc([1, 2, 3], [0, 1, 2]) == pytest.approx(4 / 7, abs=1e-12)
    # negated: -2*(2/3) / (2/3 + 2/3 + 4) = -1/4
    assert ccc([0, -1, -2], [0, 1, 2]) == pytest.approx(-0.25, abs=1e-12)
    assert ccc([0.2, 0.5, 0.9], [0.2, 0.5, 0.9]) == pytest.approx(1.0)
    # sample statistics (ddof=1) would give a different number: 2*(1/2) / (1/3 + 1 + 1/9)
    assert ccc([0, 1, 1], [0, 1, 2]) != pytest.approx(0.5 * 2 / (1 / 3 + 1 + 1 / 9))


def test_ccc_scale_matters_unlike_pearson() -> None:
    ref = [0.1, 0.4, 0.7, 0.9]
    halved = [v / 2 for v in ref]
    assert pearson(halved, ref) == pytest.approx(1.0)
    assert ccc(halved, ref) < 0.8


def test_pearson_and_mae_hand_computed() -> None:
    assert pearson([0, 1, 1], [0, 1, 2]) == pytest.approx(math.sqrt(3) / 2)
    assert mae([0, 1, 1], [0, 1, 2]) == pytest.approx(1 / 3)
    assert mae([0.5], [0.25]) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("pred", "ref", "expected_ccc", "expected_pearson"),
    [
        ([], [], "nan", "nan"),  # no pairs
        ([0.3], [0.6], "nan", "nan"),  # one pair
        ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], "nan", "nan"),  # both constant and equal
        ([0.5, 0.5, 0.5], [0.1, 0.5, 0.9], 0.0, "nan"),  # constant prediction
    ],
)
def test_edge_cases_are_documented_values(pred, ref, expected_ccc, expected_pearson) -> None:
    value = ccc(pred, ref)
    assert math.isnan(value) if expected_ccc == "nan" else value == pytest.approx(expected_ccc)
    r = pearson(pred, ref)
    assert math.isnan(r) if expected_pearson == "nan" else r == pytest.approx(expected_pearson)


def test_nan_pairs_are_dropped_and_lengths_checked() -> None:
    assert ccc([0, 1, 1, np.nan], [0, 1, 2, 5]) == pytest.approx(2 / 3)
    assert math.isnan(mae([np.nan], [1.0]))
    with pytest.raises(ValueError, match="differ in length"):
        ccc([1, 2], [1, 2, 3])


def test_dimension_metrics_per_dimension_in_label_order() -> None:
    ref = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], dtype=float)
    pred = np.array([[0, 0, 1], [1, 2, 2], [1, 3, 3]], dtype=float)
    result = dimension_metrics(pred, ref)
    assert list(result) == ["arousal", "dominance", "valence"]
    assert result["arousal"]["ccc"] == pytest.approx(2 / 3)
    assert result["dominance"]["mae"] == pytest.approx(2 / 3)
    assert result["valence"]["ccc"] == pytest.approx(4 / 7)
    assert {v["n"] for v in result.values()} == {3}
    with pytest.raises(ValueError, match="shape"):
        dimension_metrics(pred[:2], ref)
