"""Export: ONNX fp32 + int8 from a run, metadata, parity gate, measurements, CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx_runs import TEACHER, exported, make_run  # noqa: F401
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.export import (
    ParityError,
    canonical_hash,
    export_run,
    teacher_license,
    torch_predict,
)
from ser_pipeline.onnx_model import OnnxModel, read_metadata
from ser_pipeline.runs import RunError, load_run_model, read_run_meta, write_run_meta
from ser_pipeline.windows import weighted_average, window_bounds


def test_export_writes_both_models_with_io_spec_and_metadata(exported):  # noqa: F811
    result, out = exported["result"], exported["out_dir"]
    fp32, int8 = out / "model.onnx", out / "model.int8.onnx"
    assert result["files"]["model.int8.onnx"]["bytes"] < result["files"]["model.onnx"]["bytes"]
    for path in (fp32, int8):
        graph = onnx.load(str(path)).graph
        assert [i.name for i in graph.input] == ["signal"]
        assert [o.name for o in graph.output] == ["logits"]
        dims = graph.input[0].type.tensor_type.shape.dim
        assert all(d.dim_param and not d.dim_value for d in dims)  # dynamic batch + length
        meta = read_metadata(path)
        assert json.loads(meta["labels"]) == ["arousal", "dominance", "valence"]
        assert meta["sample_rate"] == "16000" and meta["teacher_id"] == TEACHER
        assert meta["run_id"] == exported["run_id"] and meta["student"] == "wav2small"
        assert meta["manifest_hash"] == canonical_hash(result["provenance"])
    assert read_metadata(int8)["quantization"] == result["quantization"]["chosen"]
    # int8 really is quantised
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert ops & {"QLinearConv", "QuantizeLinear", "ConvInteger", "DequantizeLinear"}


def test_parity_passes_on_dev_clips_and_every_candidate_is_recorded(exported):  # noqa: F811
    parity = exported["result"]["parity"]
    assert parity["passed"] and parity["source"] == "dev split" and parity["clips"] == 12
    assert min(parity["torch_vs_fp32"].values()) >= 0.999
    assert min(parity["int8_vs_fp32"].values()) >= 0.98
    candidates = {c["method"]: c for c in exported["result"]["quantization"]["candidates"]}
    assert {"dynamic", "static-qdq", "static-qdq-conv"} <= set(candidates)
    chosen = candidates[exported["result"]["quantization"]["chosen"]]
    assert chosen["passed"]
    assert all(c["bytes"] >= chosen["bytes"] for c in candidates.values() if c["passed"])


def test_onnx_matches_torch_for_batches_and_windows(exported):  # noqa: F811
    model, _ = load_run_model(exported["lake"], exported["run_id"])
    onnx_model = OnnxModel(exported["out_dir"] / "model.onnx")
    rng = np.random.default_rng(3)
    batch = (0.1 * rng.standard_normal((3, 20_000))).astype(np.float32)
    np.testing.assert_allclose(onnx_model.run(batch), torch_predict(model, list(batch)),
                               atol=1e-4)
    long = exported["records"][0]["signal"]
    long = np.concatenate([long] * 12)[: 16_000 * 25]  # 25 s -> three windows
    got = onnx_model.predict([long], window_s=10, overlap_s=2)
    assert onnx_model.n_windows == [3]
    bounds = window_bounds(long.size, window_s=10, overlap_s=2)
    per_window = torch_predict(model, [long[s:e] for s, e in bounds])
    np.testing.assert_allclose(got[0], weighted_average(per_window, bounds), atol=1e-4)
    short = onnx_model.predict([np.full(100, 0.1, np.float32)])  # padded, not an error
    assert short.shape == (1, 3) and np.isfinite(short).all()


def test_performance_is_measured_in_a_subprocess(tmp_path):
    torch.set_num_threads(1)
    lake, run_id, _ = make_run(str(tmp_path / "lake"))
    result = export_run(lake, run_id, out_dir=tmp_path / "out", calibration_clips=4, repeats=3)
    perf = result["performance"]
    for precision in ("fp32", "int8"):
        assert perf[precision]["latency_ms"] > 0
        assert perf[precision]["threads"] == 1 and perf[precision]["clip_s"] == 5.0
        assert perf[precision]["peak_rss_increase_mb"] >= 0
        assert perf[precision]["rss_before_mb"] < 500  # a fresh interpreter, not this one
        assert perf[precision]["gflops_achieved"] > 0
    assert 0.3 < perf["gflop_per_clip"] < 1.0  # Wav2Small: ~0.65 GFLOP per 5 s
    assert perf["cpu_peak"]["flop_per_cycle"] == 32
    assert result["targets"]["int8_bytes"]["met"]  # <= 120 KB: size is deterministic
    assert json.loads((tmp_path / "out" / "export.json").read_text())["run_id"] == run_id


def test_tampered_weight_fails_int8_parity_with_the_numbers(tmp_path):
    torch.set_num_threads(1)
    lake, run_id, _ = make_run(str(tmp_path / "lake"), outlier=300.0)
    with pytest.raises(ParityError) as caught:
        export_run(lake, run_id, out_dir=tmp_path / "out", calibration_clips=4,
                   measure_performance=False)
    assert "CCC(int8, fp32)" in str(caught.value) and "need >= 0.98" in str(caught.value)
    assert min(caught.value.parity["int8_vs_fp32"].values()) < 0.98
    assert min(caught.value.parity["torch_vs_fp32"].values()) >= 0.999


def test_run_without_best_checkpoint_is_a_clear_error(exported, tmp_path):  # noqa: F811
    lake = exported["lake"]
    meta = read_run_meta(lake, exported["run_id"])
    meta["best_checkpoint"] = None
    write_run_meta(lake, "no-best-run", meta)
    with pytest.raises(RunError, match="no best checkpoint"):
        export_run(lake, "no-best-run", out_dir=tmp_path / "x")
    with pytest.raises(RunError, match="not found"):
        export_run(lake, "missing-run", out_dir=tmp_path / "y")


def test_teacher_licence_is_inherited_or_flagged_unknown():
    audeering = teacher_license(TEACHER)
    assert audeering["id"] == "cc-by-nc-sa-4.0" and audeering["restricts_use"]
    assert "non-commercial" in audeering["warning"]
    with pytest.warns(UserWarning, match="unknown"):
        unknown = teacher_license("my-lab/teacher")
    assert unknown["id"] == "unknown"


def test_cli_export_json_and_errors(exported, tmp_path):  # noqa: F811
    runner = CliRunner()
    result = runner.invoke(app, ["export", "--run", "missing-run", "--lake",
                                 exported["lake"].url, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "not found" in result.output
