"""Bootstrap intervals, paired comparisons, the regression gate and fairness slices.

The reference for every interval is a plain percentile bootstrap written here with an
explicit loop over resamples, using ``metrics.py``'s own CCC / Pearson / MAE on the
resampled clips and the draws that ``ser_pipeline.stats.core`` documents.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ser_pipeline import metrics
from ser_pipeline.schemas import LABELS
from ser_pipeline.stats import (
    BETTER,
    NOT_DISTINGUISHABLE,
    WORSE,
    StatsError,
    bootstrap_metrics,
    compare_models,
    fairness_slices,
    per_speaker_ccc,
    regression_gate,
)
from ser_pipeline.stats.core import metrics_from_sums, resolve_units, unit_sums

B = 300


def speaker_data(seed: int = 42, n: int = 150, speakers: int = 7, bias: float = 0.15):
    """References, predictions with a per-speaker bias (clips of a speaker share errors),
    and unequal numbers of clips per speaker."""
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n - 2 * speakers, np.full(speakers, 1 / speakers)) + 2
    spk = np.repeat([f"spk{i:02d}" for i in range(speakers)], sizes)
    offsets = rng.normal(scale=bias, size=(speakers, 3))
    codes = np.repeat(np.arange(speakers), sizes)
    ref = rng.uniform(0.1, 0.9, size=(n, 3))
    pred = ref + offsets[codes] + rng.normal(scale=0.1, size=(n, 3))
    order = rng.permutation(n)  # clips of a speaker need not be adjacent
    return pred[order], ref[order], list(spk[order])


def plain_bootstrap(statistic, n_clips: int, speakers: list | None, *, seed: int = 0,
                    resamples: int = B, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap by the book: draw units, gather their clips, compute."""
    if speakers is None:
        groups = [np.array([i]) for i in range(n_clips)]
    else:
        names = sorted(set(speakers))
        groups = [np.flatnonzero(np.array(speakers) == name) for name in names]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(groups), len(groups))
        clips = np.concatenate([groups[u] for u in drawn])
        values.append(statistic(clips))
    values = np.array(values)
    values = values[~np.isnan(values)]
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


# -- the fast statistics equal the plain definitions ------------------------------------------
@pytest.mark.parametrize("case", ["random", "offset", "constant_pred", "both_constant_equal",
                                  "both_constant_different", "one_pair", "with_nan"])
def test_sufficient_statistics_match_metrics_py(case: str) -> None:
    rng = np.random.default_rng(3)
    ref = rng.uniform(size=(40, 3))
    pred = ref + rng.normal(scale=0.2, size=(40, 3))
    if case == "offset":  # large common offset: the raw sums must not lose the variance
        ref, pred = ref * 1e-3 + 1000.0, pred * 1e-3 + 1000.0
    elif case == "constant_pred":
        pred = np.full_like(ref, 0.4)
    elif case == "both_constant_equal":
        pred, ref = np.full_like(ref, 0.7), np.full_like(ref, 0.7)
    elif case == "both_constant_different":
        pred, ref = np.full_like(ref, 0.7), np.full_like(ref, 0.2)
    elif case == "one_pair":
        pred, ref = pred[:1], ref[:1]
    elif case == "with_nan":
        pred[::5, 0] = np.nan
        ref[::7, 2] = np.nan
    sums = unit_sums(pred, ref, resolve_units(len(pred), None)).sum(axis=0)
    fast = np.stack(metrics_from_sums(sums), axis=-1)
    plain = metrics.dimension_metrics(pred, ref)
    for d, name in enumerate(LABELS):
        expected = [plain[name]["ccc"], plain[name]["pearson"], plain[name]["mae"]]
        np.testing.assert_allclose(fast[d], expected, rtol=1e-7, atol=1e-12, equal_nan=True)


def test_resampled_sums_equal_metrics_on_the_repeated_clips() -> None:
    pred, ref, spk = speaker_data()
    units = resolve_units(len(pred), spk)
    sums = unit_sums(pred, ref, units)
    counts = np.array([3, 0, 1, 0, 2, 1, 0], dtype=np.float64)
    fast = metrics_from_sums(np.tensordot(counts, sums, axes=1))
    clips = np.concatenate([np.repeat(np.flatnonzero(units.index == u), int(c))
                            for u, c in enumerate(counts)])
    for d in range(3):
        assert fast[0][d] == pytest.approx(metrics.ccc(pred[clips, d], ref[clips, d]), abs=1e-12)
        assert fast[1][d] == pytest.approx(metrics.pearson(pred[clips, d], ref[clips, d]),
                                           abs=1e-12)
        assert fast[2][d] == pytest.approx(metrics.mae(pred[clips, d], ref[clips, d]),
                                           abs=1e-12)


# -- global intervals against the plain bootstrap ------------------------------------------
@pytest.mark.parametrize("by_speaker", [False, True])
def test_intervals_match_a_plain_percentile_bootstrap(by_speaker: bool) -> None:
    pred, ref, spk = speaker_data()
    units = spk if by_speaker else None
    result = bootstrap_metrics(pred, ref, units=units, n_resamples=B, seed=7)
    assert result.resampling.unit == ("speaker" if by_speaker else "clip")
    assert result.resampling.n_units == (7 if by_speaker else 150)
    assert (result.resampling.method, result.resampling.level) == ("percentile", 0.95)
    for d, name in enumerate(LABELS):
        entry = result.dimension(name)
        for metric, function in (("ccc", metrics.ccc), ("pearson", metrics.pearson),
                                 ("mae", metrics.mae)):
            lo, hi = plain_bootstrap(lambda c, f=function, d=d: f(pred[c, d], ref[c, d]),
                                     len(pred), units, seed=7)
            got = getattr(entry, metric)
            assert got.value == pytest.approx(function(pred[:, d], ref[:, d]), abs=1e-15)
            assert (got.lo, got.hi) == pytest.approx((lo, hi), abs=1e-9), (name, metric)
            assert got.lo <= got.value <= got.hi


def test_speaker_intervals_are_wider_when_clips_of_a_speaker_share_errors() -> None:
    pred, ref, spk = speaker_data(n=400, speakers=10, bias=0.2)
    by_clip = bootstrap_metrics(pred, ref, n_resamples=B)
    by_speaker = bootstrap_metrics(pred, ref, units=spk, n_resamples=B)
    for name in LABELS:
        clip, speaker = by_clip.dimension(name).ccc, by_speaker.dimension(name).ccc
        assert clip.value == speaker.value
        assert speaker.hi - speaker.lo > 1.5 * (clip.hi - clip.lo), name


def test_same_input_and_seed_give_the_same_interval() -> None:
    pred, ref, spk = speaker_data()
    first = bootstrap_metrics(pred, ref, units=spk, n_resamples=B, seed=11).to_dict()
    again = bootstrap_metrics(pred.copy(), ref.copy(), units=list(spk), n_resamples=B,
                              seed=11).to_dict()
    other = bootstrap_metrics(pred, ref, units=spk, n_resamples=B, seed=12).to_dict()
    assert first == again
    assert first != other


def test_metric_columns_for_a_metrics_row() -> None:
    pred, ref, spk = speaker_data()
    result = bootstrap_metrics(pred, ref, units=spk, n_resamples=B)
    columns = result.metric_columns("valence")
    entry = result.dimension("valence")
    assert columns["ccc_lo"] == entry.ccc.lo and columns["ccc_hi"] == entry.ccc.hi
    assert (columns["unit"], columns["n_units"], columns["level"], columns["method"],
            columns["n_resamples"]) == ("speaker", 7, 0.95, "percentile", B)


def test_nan_pairs_are_dropped_and_undefined_statistics_have_no_interval() -> None:
    pred, ref, _ = speaker_data()
    pred[:10, 0] = np.nan
    ref[:, 1] = 0.5  # constant reference: Pearson undefined, CCC 0 (prediction varies)
    result = bootstrap_metrics(pred, ref, n_resamples=B)
    assert result.dimension("arousal").n == len(pred) - 10
    dominance = result.dimension("dominance")
    assert dominance.ccc.value == 0.0 and (dominance.ccc.lo, dominance.ccc.hi) == (0.0, 0.0)
    assert np.isnan(dominance.pearson.value) and np.isnan(dominance.pearson.lo)
    assert dominance.pearson.undefined_resamples == B
    text = json.dumps(result.to_dict(), allow_nan=False)  # NaN became null
    assert json.loads(text)["dimensions"][1]["pearson"]["lo"] is None


def test_no_clips_gives_undefined_values_not_a_crash() -> None:
    result = bootstrap_metrics(np.zeros((0, 3)), np.zeros((0, 3)), n_resamples=B)
    assert result.resampling.n_units == 0
    entry = result.dimension("arousal")
    assert entry.n == 0 and np.isnan(entry.ccc.value) and np.isnan(entry.mae.hi)


def test_one_speaker_gives_no_interval() -> None:
    pred, ref, _ = speaker_data()
    result = bootstrap_metrics(pred, ref, units=["only"] * len(pred), n_resamples=B)
    ccc = result.dimension("arousal").ccc
    assert result.resampling.n_units == 1
    assert np.isfinite(ccc.value) and np.isnan(ccc.lo) and np.isnan(ccc.hi)


def test_clips_without_a_speaker_are_their_own_units() -> None:
    pred, ref, spk = speaker_data()
    spk = [None if i % 10 == 0 else s for i, s in enumerate(spk)]
    result = bootstrap_metrics(pred, ref, units=spk, n_resamples=B)
    assert result.resampling.n_units == 7 + 15


@pytest.mark.parametrize("call, message", [
    (lambda p, r: bootstrap_metrics(p, r[:-1]), "same clips"),
    (lambda p, r: bootstrap_metrics(p[:, :2], r[:, :2]), "expected \\[n_clips, 3\\]"),
    (lambda p, r: bootstrap_metrics(p, r, units=["a"]), "speaker ids for 150 clips"),
    (lambda p, r: bootstrap_metrics(p, r, level=95), "between 0 and 1"),
    (lambda p, r: bootstrap_metrics(p, r, n_resamples=0), "positive integer"),
])
def test_bad_input_is_a_clear_error(call, message) -> None:
    pred, ref, _ = speaker_data()
    with pytest.raises(StatsError, match=message):
        call(pred, ref)


# -- per-speaker CCC --------------------------------------------------------------------------
def test_per_speaker_mean_and_interval_match_a_plain_loop() -> None:
    pred, ref, spk = speaker_data()
    result = per_speaker_ccc(pred, ref, spk, n_resamples=B, seed=3)
    names = sorted(set(spk))
    own = np.array([[metrics.ccc(pred[np.array(spk) == s, d], ref[np.array(spk) == s, d])
                     for d in range(3)] for s in names])
    rng = np.random.default_rng(3)
    replicates = np.array([own[rng.integers(0, len(names), len(names))].mean(axis=0)
                           for _ in range(B)])
    for d, name in enumerate(LABELS):
        entry = result.dimension(name)
        assert entry.mean_ccc.value == pytest.approx(own[:, d].mean(), abs=1e-12)
        lo, hi = np.percentile(replicates[:, d], [2.5, 97.5])
        assert (entry.mean_ccc.lo, entry.mean_ccc.hi) == pytest.approx((lo, hi), abs=1e-12)
        assert entry.n_speakers == 7 and entry.excluded == ()
    assert result.resampling.unit == "speaker" and result.resampling.n_units == 7
    assert [s.speaker for s in result.speakers] == names


def test_per_speaker_exclusions_follow_the_nan_rules() -> None:
    pred, ref, spk = speaker_data()
    spk = list(spk)
    pred = np.vstack([pred, [[0.3, 0.3, 0.3]], [[0.6, 0.6, 0.6]] * 3, [[0.5, 0.5, 0.5]] * 3])
    ref = np.vstack([ref, [[0.1, 0.2, 0.3]], [[0.6, 0.6, 0.6]] * 3,
                     [[0.1, 0.5, 0.9], [0.2, 0.4, 0.8], [0.3, 0.7, 0.1]]])
    spk += ["single"] + ["flat_equal"] * 3 + ["flat_pred"] * 3
    result = per_speaker_ccc(pred, ref, spk, n_resamples=B)
    arousal = result.dimension("arousal")
    # one clip: undefined; constant and equal: undefined; constant prediction only: CCC 0
    assert arousal.excluded == ("flat_equal", "single")
    assert arousal.n_speakers == 8
    flat_pred = next(s for s in result.speakers if s.speaker == "flat_pred")
    assert flat_pred.ccc == (0.0, 0.0, 0.0) and flat_pred.n_clips == 3


def test_per_speaker_without_speakers_says_so() -> None:
    pred, ref, _ = speaker_data()
    for speakers in (None, [None] * len(pred)):
        result = per_speaker_ccc(pred, ref, speakers)
        assert not result.available and "no speaker metadata" in result.reason
        assert result.dimensions == () and result.clips_without_speaker == len(pred)
        with pytest.raises(KeyError, match="no speaker metadata"):
            result.dimension("arousal")


# -- paired comparison ------------------------------------------------------------------------
def test_paired_interval_matches_a_plain_loop() -> None:
    pred, ref, spk = speaker_data()
    other = ref + np.random.default_rng(9).normal(scale=0.2, size=ref.shape)
    result = compare_models(pred, other, ref, units=spk, n_resamples=B, seed=5)
    for d, name in enumerate(LABELS):
        lo, hi = plain_bootstrap(
            lambda c, d=d: metrics.ccc(pred[c, d], ref[c, d]) - metrics.ccc(other[c, d],
                                                                          ref[c, d]),
            len(pred), spk, seed=5)
        entry = result.dimension(name)
        assert (entry.delta.lo, entry.delta.hi) == pytest.approx((lo, hi), abs=1e-9)
        assert entry.delta.value == pytest.approx(entry.ccc_candidate - entry.ccc_baseline)


def test_a_clearly_better_model_is_better_and_the_reverse_is_worse() -> None:
    pred, ref, spk = speaker_data(bias=0.0)
    poor = ref + np.random.default_rng(1).normal(scale=0.35, size=ref.shape)
    forward = compare_models(pred, poor, ref, units=spk, n_resamples=B,
                             candidate_name="v2", baseline_name="v1")
    backward = compare_models(poor, pred, ref, units=spk, n_resamples=B)
    assert forward.verdict == BETTER and [d.verdict for d in forward.dimensions] == [BETTER] * 3
    assert backward.verdict == WORSE and [d.verdict for d in backward.dimensions] == [WORSE] * 3
    for name in LABELS:  # the same resamples: the reverse is the exact mirror
        f, b = forward.dimension(name).delta, backward.dimension(name).delta
        assert (f.value, f.lo, f.hi) == pytest.approx((-b.value, -b.hi, -b.lo), abs=1e-12)
    assert forward.summary.startswith("v2 is better than v1 (mean ΔCCC +")
    assert "paired percentile bootstrap over 7 speakers" in forward.summary


def test_an_identical_model_is_not_distinguishable() -> None:
    pred, ref, spk = speaker_data()
    result = compare_models(pred, pred.copy(), ref, units=spk, n_resamples=B)
    assert result.verdict == NOT_DISTINGUISHABLE
    for entry in (*result.dimensions, result.overall):
        assert (entry.delta.value, entry.delta.lo, entry.delta.hi) == (0.0, 0.0, 0.0)
        assert entry.verdict == NOT_DISTINGUISHABLE


def test_equally_good_noisy_models_are_rarely_called_different() -> None:
    """Two models with the same error distribution: the 95 % interval should exclude 0
    about 5 % of the time per dimension; allow up to 4 of 60 (3 dims x 20 draws) and more
    than 0 cases across the board would also be fine, but none may be systematic."""
    rng = np.random.default_rng(2024)
    calls = []
    for _ in range(20):
        ref = rng.uniform(size=(200, 3))
        a = ref + rng.normal(scale=0.2, size=ref.shape)
        b = ref + rng.normal(scale=0.2, size=ref.shape)
        calls += [d.verdict for d in compare_models(a, b, ref, n_resamples=200).dimensions]
    assert calls.count(NOT_DISTINGUISHABLE) >= 56, calls


def test_paired_comparison_drops_a_clip_for_both_models() -> None:
    pred, ref, spk = speaker_data()
    other = pred + 0.01
    other[0, 0] = np.nan
    result = compare_models(pred, other, ref, units=spk, n_resamples=B)
    arousal = result.dimension("arousal")
    assert arousal.n == len(pred) - 1
    assert arousal.ccc_candidate == pytest.approx(metrics.ccc(pred[1:, 0], ref[1:, 0]))


# -- the regression gate ----------------------------------------------------------------------
def test_gate_first_version_passes() -> None:
    pred, ref, _ = speaker_data()
    decision = regression_gate(pred, None, ref)
    assert decision.passed and decision.comparison is None
    assert decision.reason == "first version: no latest version to compare with"


def test_gate_refuses_a_deliberately_worse_candidate_with_a_reason() -> None:
    pred, ref, spk = speaker_data()
    worse = pred.copy()
    worse[:, 1] = np.random.default_rng(0).uniform(size=len(pred))  # dominance destroyed
    decision = regression_gate(worse, pred, ref, units=spk, n_resamples=B,
                               candidate_name="emo@3", latest_name="emo@2")
    assert not decision.passed and decision.regressed == ("dominance",)
    assert decision.reason.startswith("emo@3 is significantly worse than emo@2: dominance")
    assert "\n" not in decision.reason
    json.dumps(decision.to_dict(), allow_nan=False)


def test_gate_passes_an_equal_or_better_candidate() -> None:
    pred, ref, spk = speaker_data()
    assert regression_gate(pred, pred.copy(), ref, units=spk, n_resamples=B).passed
    better = 0.5 * pred + 0.5 * ref
    decision = regression_gate(better, pred, ref, units=spk, n_resamples=B)
    assert decision.passed and decision.regressed == ()
    assert "not significantly worse" in decision.reason


def test_gate_margin_tolerates_small_losses_only() -> None:
    rng = np.random.default_rng(8)
    ref = rng.uniform(size=(2000, 3))
    latest = ref + rng.normal(scale=0.1, size=ref.shape)
    slightly = latest + rng.normal(scale=0.05, size=ref.shape)  # small but real loss
    strict = regression_gate(slightly, latest, ref, n_resamples=B)
    lenient = regression_gate(slightly, latest, ref, n_resamples=B, margin=0.05)
    loss = -min(d.delta.value for d in strict.comparison.dimensions)
    assert 0 < loss < 0.05
    assert not strict.passed and lenient.passed
    with pytest.raises(StatsError, match="margin"):
        regression_gate(slightly, latest, ref, margin=-0.1)


def test_gate_names_dimensions_it_cannot_judge() -> None:
    pred, ref, _ = speaker_data()
    ref[:, 2], pred[:, 2] = 0.5, 0.5  # valence: constant and equal, CCC undefined
    decision = regression_gate(pred, pred.copy(), ref, n_resamples=B)
    assert decision.passed and decision.undefined == ("valence",)
    assert "not judged on valence" in decision.reason


def test_gate_without_clips_is_an_error() -> None:
    with pytest.raises(StatsError, match="gate has no clips"):
        regression_gate(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)))


# -- fairness slices --------------------------------------------------------------------------
def gendered_data():
    pred, ref, spk = speaker_data(n=300, speakers=12, bias=0.05)
    gender_of = {s: ("female" if int(s[3:]) % 2 else "male") for s in set(spk)}
    gender = [gender_of[s] for s in spk]
    noisy = np.array([g == "male" for g in gender])
    pred = pred.copy()
    pred[noisy] += np.random.default_rng(4).normal(scale=0.3, size=(noisy.sum(), 3))
    return pred, ref, spk, gender


def test_fairness_slices_match_a_plain_bootstrap_per_group() -> None:
    pred, ref, spk, gender = gendered_data()
    result = fairness_slices(pred, ref, gender, units=spk, n_resamples=B, seed=6)
    assert result.available and [s.group for s in result.slices] == ["female", "male"]
    assert result.resampling.unit == "speaker" and result.resampling.n_units == 12
    for k, group in enumerate(result.slices):
        rows = np.flatnonzero(np.array(gender) == group.group)
        sub_spk = [spk[i] for i in rows]
        assert group.n_clips == len(rows) and group.n_units == 6
        for d in range(3):
            draws = sorted(set(sub_spk))
            members = [rows[np.array(sub_spk) == s] for s in draws]
            rng = np.random.default_rng([6, k + 1])
            values = []
            for _ in range(B):
                clips = np.concatenate([members[u] for u in rng.integers(0, 6, 6)])
                values.append(metrics.ccc(pred[clips, d], ref[clips, d]))
            lo, hi = np.percentile(values, [2.5, 97.5])
            assert (group.ccc[d].lo, group.ccc[d].hi) == pytest.approx((lo, hi), abs=1e-9)
            assert group.ccc[d].value == pytest.approx(metrics.ccc(pred[rows, d], ref[rows, d]))


def test_fairness_gap_names_the_groups_and_excludes_zero_for_a_real_gap() -> None:
    pred, ref, spk, gender = gendered_data()
    result = fairness_slices(pred, ref, gender, units=spk, n_resamples=B)
    assert [g.dimension for g in result.gaps] == list(LABELS)
    for gap in result.gaps:
        assert (gap.best_group, gap.worst_group) == ("female", "male")
        female, male = (s.ccc[LABELS.index(gap.dimension)].value for s in result.slices)
        assert gap.gap.value == pytest.approx(female - male)
        assert gap.gap.lo > 0


def test_fairness_without_metadata_invents_nothing() -> None:
    pred, ref, spk, _ = gendered_data()
    for groups in (None, [None] * len(pred), [""] * len(pred)):
        result = fairness_slices(pred, ref, groups, attribute="gender", units=spk)
        assert not result.available and result.slices == () and result.gaps == ()
        assert result.reason.startswith("no such metadata")


def test_fairness_one_group_and_unknown_groups() -> None:
    pred, ref, spk, _ = gendered_data()
    groups = ["female"] * (len(pred) - 5) + [None] * 5
    result = fairness_slices(pred, ref, groups, n_resamples=B)
    assert result.available and result.gaps == () and "only one gender group" in result.reason
    assert result.clips_without_group == 5 and result.slices[0].n_clips == len(pred) - 5


def test_fairness_refuses_a_speaker_in_two_groups() -> None:
    pred, ref, spk, gender = gendered_data()
    gender = list(gender)
    gender[spk.index("spk01")] = "male" if gender[spk.index("spk01")] == "female" else "female"
    with pytest.raises(StatsError, match="speaker 'spk01' has clips with gender"):
        fairness_slices(pred, ref, gender, units=spk)
