"""Export: ONNX fp32 + int8 from a run, metadata, parity gate, measurements, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx_runs import TEACHER, exported, make_run  # noqa: F401
from pydantic import ValidationError
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.cpu import cpu_info
from ser_pipeline.export import (
    EXPORT_SCHEMA,
    ExportError,
    ExportResult,
    ParityError,
    canonical_hash,
    export_model,
    export_run,
    load_export,
    teacher_license,
    torch_predict,
)
from ser_pipeline.export.result import Int8State
from ser_pipeline.onnx_model import OnnxModel, read_metadata
from ser_pipeline.quantize import STUDENT_RECIPES, saturation_risks
from ser_pipeline.runs import RunError, load_run_model, read_run_meta, write_run_meta
from ser_pipeline.students import MIN_SAMPLES
from ser_pipeline.windows import weighted_average, window_bounds

DATA = Path(__file__).parent / "data"


def test_export_writes_both_models_with_io_spec_and_metadata(exported):  # noqa: F811
    result, out = exported["result"], exported["out_dir"]
    fp32, int8 = out / "model.onnx", out / "model.int8.onnx"
    assert result.files["model.int8.onnx"].bytes < result.files["model.onnx"].bytes
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
        assert meta["min_samples"] == str(MIN_SAMPLES)  # the students' minimum, once
        assert meta["manifest_hash"] == canonical_hash(
            result.run.provenance.model_dump(mode="json")) == result.run.manifest_hash
    assert read_metadata(int8)["quantization"] == result.quantization.chosen
    # int8 really is quantised
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert ops & {"QLinearConv", "QuantizeLinear", "ConvInteger", "DequantizeLinear"}


def test_parity_passes_on_dev_clips_and_every_candidate_is_recorded(exported):  # noqa: F811
    result = exported["result"]
    parity = result.parity
    # the 12 dev clips and a perturbed copy of each
    assert parity.passed and parity.source.startswith("dev split") and parity.clips == 24
    assert parity.perturbed == 12 and parity.corpora == ["toy"]
    assert min(parity.torch_vs_fp32.values()) >= 0.999
    assert min(parity.int8_vs_fp32.values()) >= 0.98
    candidates = {c.method: c for c in result.quantization.candidates}
    assert set(candidates) == {recipe.name for recipe in STUDENT_RECIPES}
    chosen = candidates[result.quantization.chosen]
    assert chosen.passed
    # int8 earns its place by speed on the exporting machine, not by size
    assert all(c.latency_ms >= chosen.latency_ms for c in candidates.values() if c.passed)
    # fp32 and the chosen int8 file, timed back to back: what serving decides on
    assert result.latency.int8_ms == chosen.latency_ms and result.latency.fp32_ms > 0
    assert (result.latency.threads, result.latency.clip_s) == (1, 5.0)


def test_shipped_int8_is_saturation_free_and_its_recipe_is_recorded(exported):  # noqa: F811
    """Holds on any CPU: the rule reads the graph, not the machine."""
    result, out = exported["result"], exported["out_dir"]
    assert saturation_risks(out / "model.int8.onnx") == []
    recipe = result.quantization.recipe
    assert recipe.name == result.quantization.chosen
    assert recipe.weight_type == "uint8" or recipe.reduce_range
    assert recipe.op_types == ["Conv"] and recipe.per_channel is True
    assert recipe.nodes_excluded  # the front end stays fp32
    machine = json.loads((out / "export.json").read_text())["machine"]
    assert machine == cpu_info().model_dump() and set(machine["flags"]) >= {"avx2",
                                                                            "avx512_vnni"}
    assert result.int8 == Int8State(withheld=False, reason=None)


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
    # shorter than MIN_SAMPLES: zero-padded to it, exactly as torch parity pads
    assert onnx_model.min_samples == MIN_SAMPLES and onnx_model.threads == 1
    short = np.random.default_rng(4).standard_normal(100).astype(np.float32) * 0.1
    np.testing.assert_allclose(onnx_model.predict([short])[0],
                               torch_predict(model, [short])[0], atol=1e-4)
    np.testing.assert_allclose(onnx_model.predict([short])[0], onnx_model.run(
        np.pad(short, (0, MIN_SAMPLES - short.size))[None])[0], rtol=1e-12)


def test_performance_is_measured_in_a_subprocess(tmp_path):
    torch.set_num_threads(1)
    lake, run_id, _ = make_run(str(tmp_path / "lake"))
    result = export_run(lake, run_id, out_dir=tmp_path / "out", calibration_clips=4, repeats=3)
    perf = result.performance
    for figures in (perf.fp32, perf.int8):
        assert figures.latency_ms > 0
        assert figures.threads == 1 and figures.clip_s == 5.0
        assert figures.peak_rss_increase_mb >= 0
        # a fresh interpreter with numpy and ONNX Runtime only: not the library, not torch
        assert figures.rss_before_mb < 100
        assert figures.gflops_achieved > 0
    assert 0.3 < perf.gflop_per_clip < 1.0  # Wav2Small: ~0.65 GFLOP per 5 s
    assert perf.cpu_peak.flop_per_cycle == 32
    assert result.run.targets["int8_bytes"].met  # <= 120 KB: size is deterministic
    saved = json.loads((tmp_path / "out" / "export.json").read_text())
    assert saved["schema"] == EXPORT_SCHEMA and saved["run"]["provenance"]["run_id"] == run_id
    assert load_export(tmp_path / "out") == result


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
    parity = result.parity
    assert parity.passed and not parity.int8_passed
    assert min(parity.int8_vs_fp32.values()) < 0.98
    assert min(parity.torch_vs_fp32.values()) >= 0.999
    assert set(result.files) == {"model.onnx"} and not (out / "model.int8.onnx").exists()
    assert result.latency.int8_ms is None and result.latency.fp32_ms > 0
    reason = result.int8.reason
    assert result.int8.withheld and reason.startswith("int8 parity ")
    worst = min(parity.int8_vs_fp32, key=parity.int8_vs_fp32.get)
    assert f"{worst[0].upper()} {parity.int8_vs_fp32[worst]:.3f}" in reason
    assert "< 0.98" in reason
    assert json.loads((out / "export.json").read_text())["int8"]["withheld"] is True


def test_parity_and_calibration_cover_every_corpus_with_perturbed_copies(tmp_path):
    """int8 is checked on the audio it will meet: every corpus in the lake (here real
    speech in the MSP-Podcast layout, which the run never trained on, beside its tones),
    clean and perturbed, with an absolute bound beside the CCC."""
    from corpora import build_msp_podcast

    from ser_pipeline.export.parity import INT8_MAX_ABS_DIFF, INT8_PARITY_MIN
    from ser_pipeline.ingest import ingest
    from ser_pipeline.perturb import PERTURBATIONS

    torch.set_num_threads(1)
    lake, run_id, _ = make_run(str(tmp_path / "lake"))
    ingest(lake, str(build_msp_podcast(tmp_path / "msp", extra_unlabeled=4)), corpus="msp",
           recipe="msp-podcast")
    msp = lake.ids("audio") - {r["audio_id"] for r in lake.read("splits").to_pylist()}
    assert len(msp) >= 6
    # 8 parity clips taken in turn: 4 of each corpus, leaving msp clips to calibrate on
    result = export_run(lake, run_id, out_dir=tmp_path / "out", calibration_clips=8,
                        parity_clips=8, measure_performance=False)
    parity = result.parity
    assert parity.corpora == ["msp", "toy"] and parity.calibration_corpora == ["msp", "toy"]
    assert msp & set(parity.audio_ids)  # clips of the corpus without splits are checked
    assert parity.perturbed == len(parity.audio_ids) == parity.clips // 2
    assert set(parity.perturbations) == set(PERTURBATIONS)
    assert parity.calibration_perturbed == parity.calibration_clips // 2 > 0
    assert parity.thresholds["int8_max_abs_diff"] == INT8_MAX_ABS_DIFF == 0.02
    tried = [c for c in result.quantization.candidates if c.ccc_vs_fp32]
    assert tried
    for candidate in tried:
        assert candidate.passed == (min(candidate.ccc_vs_fp32.values()) >= INT8_PARITY_MIN
                                    and candidate.max_abs_diff_vs_fp32 <= INT8_MAX_ABS_DIFF)
    if result.quantization.chosen:
        assert parity.int8_max_abs_diff <= INT8_MAX_ABS_DIFF
    else:
        assert result.int8.withheld and result.int8.reason.startswith("int8 parity")
    saved = json.loads((tmp_path / "out" / "export.json").read_text())["parity"]
    assert saved["corpora"] == ["msp", "toy"] and saved["perturbed"] == parity.perturbed


def test_an_int8_offset_fails_the_absolute_bound_even_where_its_ccc_passes():
    from ser_pipeline.export.parity import int8_withheld_reason
    from ser_pipeline.export.result import Candidate, RecipeRecord

    recipe = RecipeRecord(name="u8u8", mode="static", quant_format="qdq",
                          activation_type="uint8", weight_type="uint8", reduce_range=False,
                          per_channel=True, op_types=["Conv"], nodes_excluded=[])
    offset = Candidate(method="u8u8", preprocess="symbolic", recipe=recipe,
                       ccc_vs_fp32={"arousal": 0.99, "dominance": 0.995, "valence": 0.99},
                       max_abs_diff_vs_fp32=0.051)
    assert int8_withheld_reason([offset]) == "int8 parity max |int8 - fp32| 0.051 > 0.02 (u8u8)"


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
    assert audeering.id == "cc-by-nc-sa-4.0" and audeering.restricts_use
    assert "non-commercial" in audeering.warning
    # the same rule the teacher loader applies to a hub id (one source)
    from ser_pipeline.teacher.core import AUDEERING_LICENSE, license_for_id

    assert license_for_id(TEACHER) == AUDEERING_LICENSE == audeering.id
    with pytest.warns(UserWarning, match="unknown"):
        unknown = teacher_license("my-lab/teacher")
    assert unknown.id == "unknown" and license_for_id("my-lab/teacher") is None


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
    assert min(caught.value.parity.torch_vs_fp32.values()) < 0.999
    assert "[arousal=" in str(caught.value)  # the numbers, as printed by the CLI


def test_export_json_of_schema_1_still_reads(tmp_path):
    """The export.json today's code wrote before the typed result (tests/data): it reads,
    with each fact once, and its provenance still hashes to its manifest_hash."""
    old = json.loads((DATA / "export-v1.json").read_text())
    assert "schema" not in old and old["run_id"] == old["provenance"]["run_id"]
    out = tmp_path / "old-export"
    out.mkdir()
    (out / "export.json").write_text(json.dumps(old))
    result = load_export(out)
    assert result.files["model.onnx"].path == str(out / "model.onnx")
    assert result.files["model.int8.onnx"].sha256 == old["files"]["model.int8.onnx"]["sha256"]
    assert result.run.provenance.run_id == old["run_id"]
    assert result.run.provenance.teacher_id == old["provenance"]["teacher_id"]
    assert canonical_hash(result.run.provenance.model_dump(mode="json")) == \
        old["manifest_hash"] == result.run.manifest_hash
    assert result.machine.kind == old["parity"]["machine"]["kind"]
    assert (result.latency.fp32_ms, result.latency.int8_ms) == (
        old["quantization"]["fp32_latency_ms"], old["quantization"]["int8_latency_ms"])
    assert result.min_samples == 1600  # what schema-1 exports declared
    assert result.run.training.corpora == old["run"]["corpora"]
    assert result.quantization.chosen == old["quantization"]["chosen"]
    assert result.run.targets["int8_bytes"].met is old["targets"]["int8_bytes"]["met"]
    # written back, it is a schema-2 file that reads to the same result
    result.save()
    assert json.loads((out / "export.json").read_text())["schema"] == EXPORT_SCHEMA
    assert load_export(out) == result


def test_a_renamed_key_in_export_json_fails_loudly(exported, tmp_path):  # noqa: F811
    out = tmp_path / "copy"
    shutil.copytree(exported["out_dir"], out)
    data = json.loads((out / "export.json").read_text())
    data["int8"]["witheld"] = data["int8"].pop("withheld")
    (out / "export.json").write_text(json.dumps(data))
    with pytest.raises(ValidationError, match="witheld"):
        load_export(out)
    data["schema"] = "ser-pipeline/export/99"
    (out / "export.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match="upgrade ser-pipeline"):
        load_export(out)
    assert isinstance(load_export(exported["out_dir"]), ExportResult)
