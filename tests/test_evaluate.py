"""Evaluation end to end on small real lakes: ONNX Runtime, torch runs, windows, re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
import torch
from eval_lake import FeaturePredictor, write_splits
from lakes import add_teacher_labels, make_audio_lake
from typer.testing import CliRunner

from ser_pipeline.audio import decode_flac
from ser_pipeline.evaluate import (
    EvaluateError,
    ModelIdentity,
    OnnxPredictor,
    TorchPredictor,
    evaluate,
)
from ser_pipeline.lake import utcnow
from ser_pipeline.metrics import ccc, mae, pearson
from ser_pipeline.onnx_model import OnnxModel
from ser_pipeline.schemas import LABELS
from ser_pipeline.students import MIN_SAMPLES
from ser_pipeline.windows import weighted_average, window_bounds

torch.set_num_threads(1)


class Tiny(torch.nn.Module):
    """Three waveform features -> Linear(3, 3) -> sigmoid: 12 parameters."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        crossings = (signal[:, 1:] * signal[:, :-1] < 0).float().mean(1)
        features = torch.stack([signal.abs().mean(1) * 10, signal.std(1) * 10,
                                crossings * 20], 1)
        return torch.sigmoid(self.lin(features))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    # The TorchScript exporter takes 0.1 s here against ~10 s for dynamo; what is under
    # test is evaluation through ONNX Runtime, not the exporter (export.py tests that).
    torch.onnx.export(Tiny().eval(), (torch.randn(2, 16000),), str(path),
                      input_names=["signal"], output_names=["logits"],
                      dynamic_axes={"signal": {0: "batch", 1: "samples"}, "logits": {0: "batch"}},
                      dynamo=False, external_data=False)
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {"teacher_id": "toy-teacher", "student": "tiny"})
    onnx.save(proto, str(path))
    return path


@pytest.fixture()
def toy(lake_url: str):
    lake, records = make_audio_lake(lake_url, n=9, seconds=(0.5, 1.5))
    add_teacher_labels(lake, records, noise=0.05)
    by_split = write_splits(lake, records)
    return lake, records, by_split


def _labels(lake, table: str, **filters) -> dict[str, list[float]]:
    rows = lake.read(table).to_pylist()
    return {r["audio_id"]: [r[d] for d in LABELS] for r in rows
            if all(r[k] == v for k, v in filters.items())}


def test_onnx_model_metrics_match_recomputed_scores(toy, onnx_model: Path) -> None:
    lake, records, by_split = toy
    summary = evaluate(lake, model=str(onnx_model), corpora=["toy"])
    assert summary["teacher_id"] == "toy-teacher"  # from the ONNX metadata
    assert summary["model_params"] == 12 and summary["model_bytes"] == onnx_model.stat().st_size
    assert summary["predicted"] == 6 and summary["quarantined"] == 0
    metrics = lake.read("metrics").to_pylist()
    # (dev, test) x (teacher, human) x 3 dimensions, as the global CCC over all clips and
    # as the mean of per-speaker CCCs (the toy clips have speakers)
    assert len(metrics) == 24
    assert sorted(m["aggregation"] for m in metrics) == ["global"] * 12 + ["speaker_mean"] * 12
    metrics = [m for m in metrics if m["aggregation"] == "global"]
    assert {(m["split"], m["reference"]) for m in metrics} == {
        ("dev", "teacher"), ("dev", "human"), ("test", "teacher"), ("test", "human")}
    predictions = {r["audio_id"]: r for r in lake.read("predictions").to_pylist()}
    assert set(predictions) == set(by_split["dev"]) | set(by_split["test"])  # never train
    # predictions are the student runner's outputs on the stored audio, as ser predict's
    signals = {r["audio_id"]: r["signal"] for r in records}
    runner_out = OnnxModel(onnx_model).predict(
        [decode_flac_roundtrip(signals[i]) for i in by_split["test"]])
    stored = np.array([[predictions[i][d] for d in LABELS] for i in by_split["test"]])
    np.testing.assert_array_equal(stored, runner_out)
    references = {"teacher": _labels(lake, "teacher_labels"),
                  "human": _labels(lake, "human_labels")}
    for row in metrics:
        ids = by_split[row["split"]]
        column = LABELS.index(row["dimension"])
        pred = [predictions[i][row["dimension"]] for i in ids]
        ref = [references[row["reference"]][i][column] for i in ids]
        assert row["n"] == len(ids)
        assert row["ccc"] == pytest.approx(ccc(pred, ref), abs=1e-12)
        assert row["pearson"] == pytest.approx(pearson(pred, ref), abs=1e-12)
        assert row["mae"] == pytest.approx(mae(pred, ref), abs=1e-12)
        assert row["model"] == "tiny.onnx" and row["student"] == "tiny"
        assert row["model_format"] == "onnx" and row["evaluated_at"] is not None


def decode_flac_roundtrip(signal: np.ndarray) -> np.ndarray:
    """The signal as the lake stores it (16-bit FLAC)."""
    from ser_pipeline.audio import encode_flac

    return decode_flac(encode_flac(signal))


def test_evaluating_twice_adds_no_rows_and_predicts_nothing(toy, onnx_model: Path) -> None:
    lake = toy[0]
    first = evaluate(lake, model=str(onnx_model), corpora=["toy"])
    parts = {t: lake.parts(t) for t in ("metrics", "predictions", "quarantine")}
    second = evaluate(lake, model=str(onnx_model), corpora=["toy"])
    assert second["predicted"] == 0 and second["reused_predictions"] == first["clips"]
    assert second["metrics_rows_written"] == 0 and first["metrics_rows_written"] == 24
    assert {t: lake.parts(t) for t in parts} == parts
    assert second["results"] == first["results"]
    assert second["model_key"] == first["model_key"]


def test_torch_and_onnx_adapters_agree(onnx_model: Path) -> None:
    batch = (np.random.default_rng(1).standard_normal((3, 3000)) * 0.1).astype(np.float32)
    identity = ModelIdentity(model="tiny", model_key="k", model_format="torch")
    torch_predictor = TorchPredictor(Tiny(), identity, batch_size=2)
    onnx_predictor = OnnxPredictor(onnx_model, batch_size=2)
    torch_out, onnx_out = torch_predictor.predict(batch), onnx_predictor.predict(batch)
    assert torch_out.shape == (3, 3)
    np.testing.assert_allclose(torch_out, onnx_out, atol=1e-5)
    # one minimum length and one thread policy for both (the file declares no minimum)
    assert torch_predictor.min_samples == onnx_predictor.min_samples == MIN_SAMPLES
    assert onnx_predictor.model.threads == 1 and onnx_predictor.batch_size == 2


def test_long_clips_are_windowed_and_averaged(toy) -> None:
    lake, records, by_split = toy
    predictor = FeaturePredictor("windowed")
    evaluate(lake, predictor=predictor, corpora=["toy"], window_s=0.5, overlap_s=0.1)
    rows = {r["audio_id"]: r for r in lake.read("predictions").to_pylist()}
    audio_id = by_split["dev"][0]
    signal = decode_flac_roundtrip(next(r["signal"] for r in records
                                        if r["audio_id"] == audio_id))
    bounds = window_bounds(signal.size, window_s=0.5, overlap_s=0.1)
    assert rows[audio_id]["n_windows"] == len(bounds) >= 2
    expected = weighted_average(FeaturePredictor().predict(
        [np.pad(signal[s:e], (0, max(0, 1024 - (e - s)))) for s, e in bounds]), bounds)
    np.testing.assert_allclose([rows[audio_id][d] for d in LABELS], expected, atol=1e-9)
    # other windowing = other prediction function: predicted again, not reused
    again = evaluate(lake, predictor=FeaturePredictor("windowed"), corpora=["toy"])
    assert again["predicted"] == 6


def test_corpus_without_splits_is_evaluated_whole(toy, lake_url: str) -> None:
    lake = toy[0]
    _, other = make_audio_lake(lake_url, n=4, corpus="other", seed=3, human_labels=False)
    add_teacher_labels(lake, other, seed=3)
    summary = evaluate(lake, predictor=FeaturePredictor(), corpora=["other"])
    assert summary["selections"] == [{"corpus": "other", "split": "all", "split_name": None,
                                      "clips": 4}]
    assert any("no rows in 'splits'" in n for n in summary["notices"])
    rows = lake.read("metrics").to_pylist()
    assert {(r["split"], r["reference"]) for r in rows} == {("all", "teacher")}
    with pytest.raises(EvaluateError, match="corpora there: other, toy"):
        evaluate(lake, predictor=FeaturePredictor(), corpora=["nope"])


def test_bad_clips_are_quarantined_and_a_broken_model_fails(toy) -> None:
    lake, records, by_split = toy
    broken_id = "f" * 64
    lake.write_part("audio", [{
        "audio_id": broken_id, "audio": {"bytes": b"not flac at all", "path": "x.flac"},
        "corpus": "toy", "source_path": "x.flac", "duration_s": 1.0, "orig_sample_rate": 16000,
        "orig_channels": 1, "orig_format": "FLAC", "speaker": None, "split": None,
        "is_silent": False, "ingested_at": utcnow()}], key="broken")
    lake.write_part("splits", [
        {"audio_id": broken_id, "corpus": "toy", "split": "dev", "split_name": "test-split-v1"},
        {"audio_id": "e" * 64, "corpus": "toy", "split": "dev", "split_name": "test-split-v1"},
    ], key="broken-splits")
    summary = evaluate(lake, predictor=FeaturePredictor(), corpora=["toy"])
    assert summary["predicted"] == 6 and summary["quarantined"] == 2
    quarantine = lake.read("quarantine", filter=ds.field("stage") == "evaluate").to_pylist()
    assert {(q["audio_id"], q["reason"]) for q in quarantine} == {
        (broken_id, "decode_error"), ("e" * 64, "missing_audio")}
    dev_rows = [m for m in lake.read("metrics").to_pylist() if m["split"] == "dev"]
    assert {m["n"] for m in dev_rows} == {len(by_split["dev"])}

    class Broken(FeaturePredictor):
        def predict(self, signals):
            raise RuntimeError("weights are garbage")

    with pytest.raises(EvaluateError, match="failed on every clip.*weights are garbage"):
        evaluate(lake, predictor=Broken("broken"), corpora=["toy"])


def test_one_clip_the_model_rejects_is_quarantined(toy) -> None:
    lake, _, by_split = toy
    victim = by_split["test"][0]
    lengths = {}

    class Picky(FeaturePredictor):
        def predict(self, signals):
            if len(signals) == 1 and signals[0].size == lengths.get("victim"):
                raise ValueError("cannot handle this one")
            if any(s.size == lengths.get("victim") for s in signals):
                raise ValueError("batch contains a bad clip")
            return super().predict(signals)

    audio = lake.audio_for([victim], columns=["audio_id", "audio"])
    lengths["victim"] = decode_flac(audio.column("audio")[0].as_py()["bytes"]).size
    summary = evaluate(lake, predictor=Picky("picky"), corpora=["toy"])
    assert summary["predicted"] == 5
    reasons = lake.read("quarantine", filter=ds.field("stage") == "evaluate").to_pylist()
    assert [(q["audio_id"], q["reason"]) for q in reasons] == [(victim, "model_error")]
    assert "cannot handle this one" in reasons[0]["message"]


def test_training_run_is_evaluated_with_its_meta(toy) -> None:
    from ser_pipeline.runs import save_checkpoint, write_run_meta
    from ser_pipeline.students import build_student, count_parameters

    lake = toy[0]
    model = build_student("wav2small")
    checkpoint = save_checkpoint(lake, "wav2small-test-run", 7, model.state_dict())
    write_run_meta(lake, "wav2small-test-run", {
        "student": "wav2small", "student_options": {}, "teacher_id": "toy-teacher",
        "teacher_sha256": "0" * 64, "best_checkpoint": checkpoint, "corpora": ["toy"],
        "split_name": "test-split-v1", "params": count_parameters(model)})
    summary = evaluate(lake, run_id="wav2small-test-run")
    assert summary["corpora"] == ["toy"] and summary["teacher_id"] == "toy-teacher"
    rows = lake.read("metrics").to_pylist()
    assert len(rows) == 24
    assert {r["student"] for r in rows} == {"wav2small"}
    assert {r["run_id"] for r in rows} == {"wav2small-test-run"}
    assert {r["model_params"] for r in rows} == {sum(p.numel() for p in model.parameters())}
    assert all(r["ccc"] is None or -1 <= r["ccc"] <= 1 for r in rows)
    # other weights are another model: a second run is predicted afresh, not reused
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    write_run_meta(lake, "wav2small-test-run2", {
        "student": "wav2small", "student_options": {}, "teacher_id": "toy-teacher",
        "best_checkpoint": save_checkpoint(lake, "wav2small-test-run2", 7, state),
        "corpora": ["toy"]})
    second = evaluate(lake, run_id="wav2small-test-run2")
    assert second["model_key"] != summary["model_key"]
    assert second["predicted"] == 6 and second["reused_predictions"] == 0


def test_needs_exactly_one_model_and_a_real_file(toy) -> None:
    lake = toy[0]
    with pytest.raises(EvaluateError, match="exactly one"):
        evaluate(lake)
    with pytest.raises(EvaluateError, match="does not exist"):
        evaluate(lake, model="nowhere/model.onnx", corpora=["toy"])


def test_cli_evaluate_local_json(toy, onnx_model: Path) -> None:
    from ser_pipeline.cli import app

    lake = toy[0]
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--model", str(onnx_model), "--corpus", "toy",
                                 "--lake", lake.url, "--engine", "local", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["metrics_rows_written"] == 24 and len(summary["results"]) == 4
    result = runner.invoke(app, ["evaluate", "--lake", lake.url, "--engine", "local"])
    assert result.exit_code == 2 and "exactly one of --run" in result.output
    result = runner.invoke(app, ["evaluate", "--model", str(onnx_model), "--corpus", "nope",
                                 "--lake", lake.url, "--engine", "local"])
    assert result.exit_code == 2 and "'nope' is not in the lake" in result.output


@pytest.mark.slow
def test_evaluate_flow_posts_artifacts(prefect_harness, toy, onnx_model: Path) -> None:
    from prefect.artifacts import Artifact

    from flows.evaluate import evaluate_flow

    lake = toy[0]
    summary = evaluate_flow(models=[str(onnx_model)], corpora=["toy"], lake=lake.url)
    assert summary["models"] == ["tiny.onnx"] and summary["metrics_rows_written"] == 24
    table = Artifact.get("evaluate-metrics")
    assert table is not None and table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert len(rows) == 4 and {r["reference"] for r in rows} == {"teacher", "human"}
    markdown = Artifact.get("evaluate-summary")
    assert markdown is not None and "tiny.onnx" in markdown.data


# -- intervals, per-speaker means and fairness slices, end to end ----------------------------
def plain_percentile_bootstrap(statistic, groups: list[np.ndarray], *, resamples: int = 1000,
                               seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap by the book: ``groups`` are the clip indices of each unit in
    the units' sorted order; resample ``b`` is the ``b``-th ``rng.integers(0, U, U)``."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(groups), len(groups))
        values.append(statistic(np.concatenate([groups[u] for u in drawn])))
    values = np.array(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _scored(lake, row: dict, records: list[dict], by_split: dict) -> tuple:
    """The predictions, references and speakers a metrics row was computed from, in the
    order evaluate scores clips (by audio_id: with clip units, unit k is the k-th clip)."""
    ids = sorted(by_split[row["split"]])
    predictions = {r["audio_id"]: r for r in lake.read("predictions").to_pylist()
                   if r["model_key"] == row["model_key"]}
    table = "teacher_labels" if row["reference"] == "teacher" else "human_labels"
    labels = _labels(lake, table)
    speaker = {r["audio_id"]: r["speaker"] for r in records}
    pred = np.array([[predictions[i][d] for d in LABELS] for i in ids])
    ref = np.array([labels[i] for i in ids])
    return pred, ref, [speaker[i] for i in ids]


@pytest.mark.parametrize("speakers", [5, 0], ids=["by-speaker", "by-clip"])
def test_metrics_rows_equal_a_plain_bootstrap_on_the_same_data(lake_url: str,
                                                               speakers: int) -> None:
    lake, records = make_audio_lake(lake_url, n=36, seconds=(0.3, 0.6), speakers=speakers)
    add_teacher_labels(lake, records, noise=0.1)
    by_split = write_splits(lake, records)
    evaluate(lake, predictor=FeaturePredictor(), corpora=["toy"])
    rows = lake.read("metrics").to_pylist()
    global_rows = [r for r in rows if r["aggregation"] == "global"]
    assert len(global_rows) == 12  # (dev, test) x (teacher, human) x 3 dimensions
    for row in global_rows:
        pred, ref, spk = _scored(lake, row, records, by_split)
        d = LABELS.index(row["dimension"])
        if speakers:
            names = sorted(set(spk))
            groups = [np.flatnonzero(np.array(spk) == name) for name in names]
            assert (row["ci_unit"], row["ci_units"]) == ("speaker", len(names)) == (
                "speaker", speakers)
        else:
            groups = [np.array([i]) for i in range(len(pred))]
            assert (row["ci_unit"], row["ci_units"]) == ("clip", len(pred))
        assert (row["ci_level"], row["ci_method"], row["ci_resamples"]) == (
            0.95, "percentile", 1000)
        for metric, function in (("ccc", ccc), ("pearson", pearson), ("mae", mae)):
            lo, hi = plain_percentile_bootstrap(
                lambda c, f=function, p=pred[:, d], r=ref[:, d]: f(p[c], r[c]), groups)
            assert row[f"{metric}_lo"] == pytest.approx(lo, abs=1e-9), (metric, row)
            assert row[f"{metric}_hi"] == pytest.approx(hi, abs=1e-9), (metric, row)
            assert row[f"{metric}_lo"] <= row[metric] <= row[f"{metric}_hi"]
    speaker_rows = [r for r in rows if r["aggregation"] == "speaker_mean"]
    if not speakers:
        assert speaker_rows == []  # no speaker ids: no per-speaker mean is invented
        return
    assert len(speaker_rows) == 12
    for row in speaker_rows:
        pred, ref, spk = _scored(lake, row, records, by_split)
        d = LABELS.index(row["dimension"])
        names = sorted(set(spk))
        own = np.array([ccc(pred[np.array(spk) == s, d], ref[np.array(spk) == s, d])
                        for s in names])
        assert row["ccc"] == pytest.approx(np.nanmean(own), abs=1e-12)
        # resampling speakers and averaging their CCCs, each as often as it was drawn
        lo, hi = plain_percentile_bootstrap(
            lambda c, own=own: (float(np.nanmean(own[c])) if not np.isnan(own[c]).all()
                                else np.nan),
            [np.array([u]) for u in range(len(names))])
        assert (row["ccc_lo"], row["ccc_hi"]) == (pytest.approx(lo, abs=1e-12),
                                                  pytest.approx(hi, abs=1e-12))
        assert row["pearson"] is None and row["mae"] is None and row["ci_unit"] == "speaker"


def test_evaluate_output_shows_intervals_and_per_speaker_ccc(lake_url: str) -> None:
    from ser_pipeline.cli import app

    lake, records = make_audio_lake(lake_url, n=24, seconds=(0.3, 0.6), speakers=4)
    add_teacher_labels(lake, records, noise=0.1)
    write_splits(lake, records)
    summary = evaluate(lake, predictor=FeaturePredictor(), corpora=["toy"])
    entry = next(r for r in summary["results"]
                 if (r["split"], r["reference"]) == ("dev", "teacher"))
    assert entry["ccc_arousal_lo"] <= entry["ccc_arousal"] <= entry["ccc_arousal_hi"]
    assert entry["ci_unit"] == "speaker" and entry["speakers"] == 4
    assert entry["speaker_ccc_valence_lo"] <= entry["speaker_ccc_valence"]
    assert any("no gender metadata" in n for n in summary["notices"])
    assert summary["fairness"] == [] and lake.parts("fairness") == []
    from rich.console import Console

    from ser_pipeline.cli.evaluate import results_table

    console = Console(width=200, record=True)
    console.print(results_table(summary))
    text = console.export_text()
    lo, hi = entry["ccc_arousal_lo"], entry["ccc_arousal_hi"]
    assert f"{entry['ccc_arousal']:.3f}" in text and f"[{lo:.3f}, {hi:.3f}]" in text
    assert "speaker mean" in text and "global" in text
    result = CliRunner().invoke(app, ["evaluate", "--model", "nothing.onnx", "--lake",
                                      lake.url, "--engine", "local"])
    assert result.exit_code == 2


def test_gender_slices_are_stored_and_shown(lake_url: str) -> None:
    from ser_pipeline.stats import fairness_slices

    lake, records = make_audio_lake(lake_url, n=30, seconds=(0.3, 0.6), speakers=5,
                                    genders=("female", "male"))
    add_teacher_labels(lake, records, noise=0.1)
    by_split = write_splits(lake, records)
    summary = evaluate(lake, predictor=FeaturePredictor(), corpora=["toy"])
    assert not any("gender" in n for n in summary["notices"])
    rows = lake.read("fairness").to_pylist()
    # (dev, test) x (teacher, human) x (2 groups + 1 gap) x 3 dimensions
    assert len(rows) == 2 * 2 * 3 * 3
    metrics = {(m["split"], m["reference"]): m["eval_id"] for m in
               lake.read("metrics").to_pylist()}
    row = next(r for r in rows if (r["split"], r["reference"], r["kind"], r["dimension"])
               == ("dev", "teacher", "gap", "valence"))
    assert row["eval_id"] == metrics[("dev", "teacher")]
    pred, ref, spk = _scored(lake, {**row, "model_key": summary["model_key"]}, records,
                             by_split)
    gender = {r["speaker"]: r["gender"] for r in records}
    expected = fairness_slices(pred, ref, [gender[s] for s in spk], units=spk)
    gap = expected.gaps[2]
    assert (row["best_group"], row["worst_group"]) == (gap.best_group, gap.worst_group)
    assert (row["ccc"], row["ccc_lo"], row["ccc_hi"]) == (gap.gap.value, gap.gap.lo,
                                                         gap.gap.hi)
    female = [r for r in rows if (r["split"], r["reference"], r["group_value"]) ==
              ("dev", "teacher", "female")]
    assert {r["n"] for r in female} == {sum(gender[s] == "female" for s in spk)}
    mask = np.array([gender[s] == "female" for s in spk])
    arousal = next(r for r in female if r["dimension"] == "arousal")
    assert arousal["ccc"] == pytest.approx(ccc(pred[mask, 0], ref[mask, 0]), abs=1e-12)
    assert arousal["ci_unit"] == "speaker" and arousal["ci_units"] == 3  # spk0, spk2, spk4
    entry = next(f for f in summary["fairness"]
                 if (f["split"], f["reference"]) == ("dev", "teacher"))
    assert [g["group"] for g in entry["groups"]] == ["female", "male"]
    from rich.console import Console

    from ser_pipeline.cli.evaluate import fairness_table

    console = Console(width=200, record=True)
    console.print(fairness_table(summary))
    text = console.export_text()
    assert f"{gap.gap.value:+.3f}" in text and f"[{gap.gap.lo:+.3f}, {gap.gap.hi:+.3f}]" in text
    assert f"{gap.best_group} - {gap.worst_group}" in text


def test_references_are_the_views_latest_labels_with_deterministic_ties(lake_url: str) -> None:
    from ser_pipeline.evaluate import latest_references

    lake, records = make_audio_lake(lake_url, n=4, seconds=(0.3, 0.5), human_labels=False)
    ids = [r["audio_id"] for r in records]
    when, later = utcnow(), utcnow()
    human = [{"audio_id": ids[0], "corpus": "toy", "arousal": a, "dominance": 0.5,
              "valence": 0.5, "source_scale": "0-1", "ingested_at": when} for a in (0.9, 0.2)]
    human.append({"audio_id": ids[1], "corpus": "toy", "arousal": 0.1, "dominance": 0.1,
                  "valence": 0.1, "source_scale": "0-1", "ingested_at": when})
    human.append({"audio_id": ids[1], "corpus": "toy", "arousal": 0.8, "dominance": 0.8,
                  "valence": 0.8, "source_scale": "0-1", "ingested_at": later})
    # the two tied rows in two parts, in both orders: the choice must not depend on it
    lake.write_part("human_labels", human[:1] + human[2:], key="h1")
    lake.write_part("human_labels", human[1:2], key="h0")
    teacher = [{"audio_id": ids[2], "teacher_id": "t", "teacher_sha256": sha,
                "arousal": a, "dominance": 0.0, "valence": 0.0, "n_windows": 1,
                "labeled_at": when, "run_id": "r"} for sha, a in (("b" * 64, 0.7),
                                                                  ("a" * 64, 0.3))]
    teacher.append({**teacher[0], "teacher_id": "other", "arousal": 0.99})
    lake.write_part("teacher_labels", teacher, key="t")
    refs = latest_references(lake, ids, teacher_id="t")
    assert refs[("human", "t")] == {ids[0]: (0.2, 0.5, 0.5), ids[1]: (0.8, 0.8, 0.8)}
    assert refs[("teacher", "t")] == {ids[2]: (0.3, 0.0, 0.0)}  # the lower sha256
    every = latest_references(lake, ids, teacher_id=None)
    assert every[("teacher", "other")] == {ids[2]: (0.99, 0.0, 0.0)}
    assert every[("human", None)] == refs[("human", "t")]
