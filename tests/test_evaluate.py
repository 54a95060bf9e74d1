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
    # (dev, test) x (teacher, human) x 3 dimensions
    assert len(metrics) == 12
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
    assert second["metrics_rows_written"] == 0 and first["metrics_rows_written"] == 12
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
    assert len(rows) == 12
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
    assert summary["metrics_rows_written"] == 12 and len(summary["results"]) == 4
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
    assert summary["models"] == ["tiny.onnx"] and summary["metrics_rows_written"] == 12
    table = Artifact.get("evaluate-metrics")
    assert table is not None and table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert len(rows) == 4 and {r["reference"] for r in rows} == {"teacher", "human"}
    markdown = Artifact.get("evaluate-summary")
    assert markdown is not None and "tiny.onnx" in markdown.data
