"""The robustness suite on real signals with two real (numpy) predictors.

Both read pitch from the waveform with an autocorrelation pitch tracker; the fragile one
also reads the level, as a model that never saw gain changes might. The references
follow pitch, so both score well on clean audio and differ only in robustness.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from lakes import synthetic_params, tone

from ser_pipeline import metrics
from ser_pipeline.perturb import PERTURBATIONS, PerturbationError, perturb
from ser_pipeline.robustness import (
    SER_TESTS,
    perturbation_seed,
    robustness_suite,
)
from ser_pipeline.schemas import LABELS, SAMPLE_RATE
from ser_pipeline.stats import StatsError, bootstrap_metrics

B = 200


def pitch_labels(f0: np.ndarray) -> np.ndarray:
    a = (f0 - 90) / 230
    return np.stack([a, 1 - a, 0.25 + 0.5 * a], axis=-1)


def pitch_of(signal: np.ndarray) -> float:
    """Autocorrelation pitch (85-340 Hz) of the first second: the first lag within 90 %
    of the highest peak, moved up to its local maximum."""
    x = np.asarray(signal, np.float64)[:SAMPLE_RATE]
    x = x - x.mean()
    size = 1 << (2 * x.size - 1).bit_length()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, size)) ** 2, size)[:x.size]
    lo, hi = SAMPLE_RATE // 340, SAMPLE_RATE // 85
    lag = lo + int(np.flatnonzero(ac[lo:hi] >= 0.9 * ac[lo:hi].max())[0])
    while lag + 1 < hi and ac[lag + 1] > ac[lag]:
        lag += 1
    return SAMPLE_RATE / lag


def robust(batch: list[np.ndarray]) -> np.ndarray:
    return pitch_labels(np.array([pitch_of(x) for x in batch]))


def fragile(batch: list[np.ndarray]) -> np.ndarray:
    level_db = np.array([20 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))
                         for x in batch])
    return robust(batch) + ((level_db + 17) / 40)[:, None]


@pytest.fixture(scope="module")
def clips() -> dict:
    rng = np.random.default_rng(0)
    params = [synthetic_params(i, 5) for i in range(40)]
    signals = [tone(**p, seconds=float(rng.uniform(1.0, 2.0)), seed=i)
               for i, p in enumerate(params)]
    return {"signals": signals, "reference": pitch_labels(np.array([p["f0"] for p in params])),
            "speakers": [f"spk{i % 8}" for i in range(40)]}


@pytest.fixture(scope="module")
def reports(clips: dict) -> dict:
    return {predictor.__name__: robustness_suite(predictor, clips["signals"],
                                                 clips["reference"], n_resamples=B)
            for predictor in (robust, fragile)}


def test_every_perturbation_is_reported_with_the_ser_tests_thresholds(reports: dict) -> None:
    report = reports["robust"]
    assert [r.perturbation for r in report.results] == list(PERTURBATIONS)
    assert report.thresholds == SER_TESTS
    assert (SER_TESTS.max_ccc_drop, SER_TESTS.min_unchanged_share,
            SER_TESTS.unchanged_below) == (0.05, 0.90, 0.05)
    for result in report.results:
        assert result.description == PERTURBATIONS[result.perturbation].description
        assert [d.dimension for d in result.dimensions] == list(LABELS)


def test_a_level_reading_predictor_fails_gain_where_a_pitch_tracker_passes(
        reports: dict) -> None:
    for name in ("gain_minus20db", "gain_plus6db_clipped"):
        steady = next(r for r in reports["robust"].results if r.perturbation == name)
        shaky = next(r for r in reports["fragile"].results if r.perturbation == name)
        assert steady.passed and not shaky.passed, name
        for d in shaky.dimensions:
            assert not d.passed_unchanged and d.unchanged_share < 0.1
    quiet = next(r for r in reports["fragile"].results if r.perturbation == "gain_minus20db")
    for d in quiet.dimensions:  # 20 dB quieter moves every prediction by 0.5
        assert not d.passed_drop and d.ccc_drop.lo > SER_TESTS.max_ccc_drop


def test_the_two_criteria_can_disagree(reports: dict) -> None:
    """The pitch tracker makes octave errors on a few telephone clips (the fundamental is
    below the band): most predictions stay put, but those few outliers cost CCC."""
    phone = next(r for r in reports["robust"].results if r.perturbation == "telephone")
    for d in phone.dimensions:
        assert d.passed_unchanged and not d.passed_drop and not d.passed


def test_figures_equal_a_direct_computation(clips: dict, reports: dict) -> None:
    signals, ref = clips["signals"], clips["reference"]
    clean = fragile(signals)
    name = "noise_snr10db"
    noisy = fragile([perturb(x, name, seed=perturbation_seed(0, name, i))
                     for i, x in enumerate(signals)])
    result = next(r for r in reports["fragile"].results if r.perturbation == name)
    for d, entry in enumerate(result.dimensions):
        assert entry.clean_ccc.value == pytest.approx(metrics.ccc(clean[:, d], ref[:, d]))
        assert entry.perturbed_ccc.value == pytest.approx(metrics.ccc(noisy[:, d], ref[:, d]))
        assert entry.ccc_drop.value == pytest.approx(entry.clean_ccc.value
                                                     - entry.perturbed_ccc.value)
        assert entry.ccc_drop.lo <= entry.ccc_drop.value <= entry.ccc_drop.hi
        assert entry.unchanged_share == pytest.approx(
            np.mean(np.abs(noisy[:, d] - clean[:, d]) < 0.05))
    expected_clean = bootstrap_metrics(clean, ref, n_resamples=B).dimension("valence").ccc
    for other in reports["fragile"].results:  # the clean figure is shared
        assert other.dimensions[2].clean_ccc == expected_clean


def test_rows_for_a_robustness_table(reports: dict) -> None:
    rows = reports["fragile"].rows()
    assert len(rows) == len(PERTURBATIONS) * 3
    row = next(r for r in rows if r["perturbation"] == "gain_minus20db"
               and r["dimension"] == "arousal")
    assert row["max_ccc_drop"] == 0.05 and row["min_unchanged_share"] == 0.9
    assert row["passed"] is False and row["ci_unit"] == "clip" and row["ci_units"] == 40
    assert row["ccc_drop_lo"] <= row["ccc_drop"] <= row["ccc_drop_hi"]
    json.dumps(rows, allow_nan=False)
    json.dumps(reports["fragile"].to_dict(), allow_nan=False)
    assert not reports["fragile"].passed


def test_known_clean_predictions_are_reused_and_give_the_same_report(clips: dict) -> None:
    calls = []

    def counting(batch: list[np.ndarray]) -> np.ndarray:
        calls.append(len(batch))
        return fragile(batch)

    options = {"perturbations": ["gain_minus20db", "room_rt60_500ms"], "n_resamples": B,
               "speakers": clips["speakers"], "batch_clips": 16}
    computed = robustness_suite(counting, clips["signals"], clips["reference"], **options)
    first_calls = list(calls)
    calls.clear()
    judged = []  # the progress callback sees each result as soon as it is judged
    reused = robustness_suite(counting, clips["signals"], clips["reference"],
                              clean_predictions=fragile(clips["signals"]),
                              progress=lambda result: judged.append((result, sum(calls))),
                              **options)
    assert reused.to_dict() == computed.to_dict()
    assert [(r.perturbation, n) for r, n in judged] == [("gain_minus20db", 40),
                                                        ("room_rt60_500ms", 80)]
    assert tuple(r for r, _ in judged) == reused.results
    assert sum(first_calls) == 3 * 40 and sum(calls) == 2 * 40
    assert max(first_calls) == 16  # batches bound the memory
    assert computed.resampling.unit == "speaker" and computed.resampling.n_units == 8


def test_bad_input_is_a_clear_error(clips: dict) -> None:
    signals, ref = clips["signals"], clips["reference"]
    with pytest.raises(PerturbationError, match="unknown perturbation.*'echo'"):
        robustness_suite(robust, signals, ref, perturbations=["echo"])
    with pytest.raises(StatsError, match="39 references for 40 clips"):
        robustness_suite(robust, signals, ref[:-1])
    with pytest.raises(StatsError, match="no clips"):
        robustness_suite(robust, [], ref[:0])
    with pytest.raises(StatsError, match="returned 1 rows for 2 signals"):
        robustness_suite(lambda batch: robust(batch)[:1], signals[:2], ref[:2],
                         perturbations=["telephone"])
