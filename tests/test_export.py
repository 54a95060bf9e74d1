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
    export_model,
    export_run,
    teacher_license,
    torch_predict,
)
from ser_pipeline.onnx_model import OnnxModel, read_metadata
from ser_pipeline.quantize import STUDENT_RECIPES, cpu_info, saturation_risks
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
    assert set(candidates) == {recipe.name for recipe in STUDENT_RECIPES}
    chosen = candidates[exported["result"]["quantization"]["chosen"]]
    assert chosen["passed"]
    # int8 earns its place by speed on the exporting machine, not by size
    assert all(c["latency_ms"] >= chosen["latency_ms"] for c in candidates.values()
               if c["passed"])
    assert exported["result"]["quantization"]["int8_latency_ms"] == chosen["latency_ms"]
    assert exported["result"]["quantization"]["fp32_latency_ms"] > 0


def test_shipped_int8_is_saturation_free_and_its_recipe_is_recorded(exported):  # noqa: F811
    """Holds on any CPU: the rule reads the graph, not the machine."""
    result, out = exported["result"], exported["out_dir"]
    assert saturation_risks(out / "model.int8.onnx") == []
    recipe = result["quantization"]["recipe"]
    assert recipe["name"] == result["quantization"]["chosen"]
    assert recipe["weight_type"] == "uint8" or recipe["reduce_range"]
    assert recipe["op_types"] == ["Conv"] and recipe["per_channel"] is True
    assert recipe["nodes_excluded"]  # the front end stays fp32
    machine = json.loads((out / "export.json").read_text())["parity"]["machine"]
    assert machine == cpu_info() and set(machine["flags"]) >= {"avx2", "avx512_vnni"}
    assert result["int8"] == {"withheld": False, "reason": None}


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


def test_tampered_weight_withholds_int8_and_ships_fp32_with_the_numbers(tmp_path):
    torch.set_num_threads(1)
    # One conv channel offset by +3000: its activation range flattens the other channels
    # to a few uint8 steps, so no int8 candidate reaches CCC 0.98 while fp32 stays exact.
    lake, run_id, _ = make_run(str(tmp_path / "lake"), outlier=3000.0)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "model.int8.onnx").write_bytes(b"stale int8 from an earlier export")
    result = export_run(lake, run_id, out_dir=out, calibration_clips=4,
                        measure_performance=False)
    assert result["parity"]["passed"] and not result["parity"]["int8_passed"]
    assert min(result["parity"]["int8_vs_fp32"].values()) < 0.98
    assert min(result["parity"]["torch_vs_fp32"].values()) >= 0.999
    assert set(result["files"]) == {"model.onnx"} and not (out / "model.int8.onnx").exists()
    reason = result["int8"]["reason"]
    assert result["int8"]["withheld"] and reason.startswith("int8 parity ")
    worst = min(result["parity"]["int8_vs_fp32"], key=result["parity"]["int8_vs_fp32"].get)
    assert f"{worst[0].upper()} {result['parity']['int8_vs_fp32'][worst]:.3f}" in reason
    assert "< 0.98" in reason
    assert json.loads((out / "export.json").read_text())["int8"]["withheld"] is True


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


def test_fp32_that_disagrees_with_torch_is_a_parity_error(exported, tmp_path):  # noqa: F811
    """Random noise added in forward: ONNX and torch draw different noise, so fp32 parity
    fails; that (unlike a failed int8 gate) is an error and nothing is written for publish."""
    torch.set_num_threads(1)
    model, _ = load_run_model(exported["lake"], exported["run_id"])

    class Noisy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, signal: torch.Tensor) -> torch.Tensor:
            return self.inner(signal) + torch.randn(signal.shape[0], 3)

    clips = [r["signal"] for r in exported["records"][:8]]
    with pytest.raises(ParityError, match=r"CCC\(onnx fp32, torch\)") as caught:
        export_model(Noisy(), out_dir=tmp_path / "noisy", calibration=clips, parity_clips=clips,
                     metadata={}, measure_performance=False)
    assert min(caught.value.parity["torch_vs_fp32"].values()) < 0.999
    assert "[arousal=" in str(caught.value)  # the numbers, as printed by the CLI
