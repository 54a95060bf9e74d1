"""Teachers: strict loading, ids, round trips, ensembles, ONNX parity, windows, fine-tuning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from lakes import make_audio_lake
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.schemas import SAMPLE_RATE
from ser_pipeline.teacher import (
    ClipError,
    EnsembleTeacher,
    TeacherError,
    export_teacher_onnx,
    finetune_teacher,
    init_teacher,
    load_teacher,
    split_members,
)
from ser_pipeline.windows import weighted_average, window_bounds

torch.set_num_threads(2)
RNG = np.random.default_rng(7)


def signals(*seconds: float) -> list[np.ndarray]:
    return [(0.1 * RNG.standard_normal(int(s * SAMPLE_RATE))).astype(np.float32)
            for s in seconds]


@pytest.fixture(scope="module")
def w2v2(tmp_path_factory) -> Path:
    return init_teacher(tmp_path_factory.mktemp("t") / "w2v2", arch="wav2vec2", seed=1)


@pytest.fixture(scope="module")
def wavlm(tmp_path_factory) -> Path:
    return init_teacher(tmp_path_factory.mktemp("t") / "wavlm", arch="wavlm", seed=2)


def test_init_teacher_is_marked_random_with_id_and_sha(w2v2: Path) -> None:
    teacher = load_teacher(f"hf:{w2v2}")
    assert teacher.is_random
    assert "random" in teacher.teacher_id
    import hashlib

    sha = hashlib.sha256((w2v2 / "model.safetensors").read_bytes()).hexdigest()
    assert teacher.sha256 == sha
    assert teacher.teacher_id.endswith(sha[:12])
    assert teacher.license is None
    with pytest.raises(TeacherError, match="already holds a model"):
        init_teacher(w2v2)


def test_same_seed_same_weights_and_large_config_shape(tmp_path: Path) -> None:
    a = init_teacher(tmp_path / "a", seed=3)
    b = init_teacher(tmp_path / "b", seed=3)
    assert load_teacher(f"hf:{a}").sha256 == load_teacher(f"hf:{b}").sha256
    from ser_pipeline.teacher.model import build_config

    large = build_config("wav2vec2", "large")
    assert (large.hidden_size, large.num_hidden_layers, large.do_stable_layer_norm,
            large.feat_extract_norm) == (1024, 12, True, "layer")


def test_hub_style_keys_and_round_trip_give_identical_outputs(w2v2: Path, tmp_path: Path) -> None:
    keys = load_file(str(w2v2 / "model.safetensors")).keys()
    assert {"classifier.dense.weight", "classifier.out_proj.weight"} <= set(keys)
    assert all(k.startswith(("wav2vec2.", "classifier.")) for k in keys)
    teacher = load_teacher(f"hf:{w2v2}")
    clips = signals(1.0, 2.3)
    first = teacher.predict(clips)
    teacher.model.save_pretrained(str(tmp_path / "copy"))
    copy = load_teacher(f"hf:{tmp_path / 'copy'}")
    np.testing.assert_array_equal(copy.predict(clips), first)
    assert first.shape == (2, 3)


def test_strict_loading_rejects_renamed_and_misshaped_weights(w2v2: Path, tmp_path: Path) -> None:
    broken = tmp_path / "renamed"
    shutil.copytree(w2v2, broken)
    weights = load_file(str(broken / "model.safetensors"))
    weights["classifier.dense2.weight"] = weights.pop("classifier.dense.weight")
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(TeacherError) as error:
        load_teacher(f"hf:{broken}")
    message = str(error.value)
    assert "classifier.dense.weight" in message and "classifier.dense2.weight" in message
    assert "\n" not in message

    misshaped = tmp_path / "misshaped"
    shutil.copytree(w2v2, misshaped)
    config = json.loads((misshaped / "config.json").read_text())
    config["intermediate_size"] = 96
    (misshaped / "config.json").write_text(json.dumps(config))
    with pytest.raises(TeacherError, match="intermediate|mismatch|size"):
        load_teacher(f"hf:{misshaped}")


def test_bad_specs_give_one_line_errors(w2v2: Path, tmp_path: Path) -> None:
    cases = ["w2v2", "zip:foo", f"hf:{tmp_path / 'nothing'}", f"hf:{w2v2 / 'config.json'}",
             f"onnx:{tmp_path / 'missing.onnx'}", "hf:audeering/not-in-cache", f"hf:{tmp_path}",
             f"ensemble:hf:{w2v2}"]
    for spec in cases:
        with pytest.raises(TeacherError) as error:
            load_teacher(spec)
        assert "\n" not in str(error.value), spec
    if not torch.cuda.is_available():
        with pytest.raises(TeacherError, match="no CUDA GPU"):
            load_teacher(f"hf:{w2v2}", device="cuda")


def test_batched_prediction_equals_clip_by_clip(w2v2: Path) -> None:
    teacher = load_teacher(f"hf:{w2v2}")
    clips = signals(0.5, 1.7, 1.0, 2.9, 0.8)
    batched = teacher.predict(clips, batch_size=8)
    single = np.concatenate([teacher.predict([clip]) for clip in clips])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert np.ptp(batched, axis=0).max() > 0  # outputs depend on the clip


def test_long_audio_is_windowed_and_duration_weighted(w2v2: Path) -> None:
    teacher = load_teacher(f"hf:{w2v2}")
    (long_clip,) = signals(9.0)
    outputs, n_windows = teacher.predict_with_windows([long_clip], window_s=4.0, overlap_s=1.0)
    bounds = window_bounds(long_clip.size, window_s=4.0, overlap_s=1.0)
    assert n_windows[0] == len(bounds) == 3
    per_window = np.concatenate([teacher.predict([long_clip[s:e]], window_s=100)
                                 for s, e in bounds])
    np.testing.assert_allclose(outputs[0], weighted_average(per_window, bounds), atol=1e-5)
    whole = teacher.predict([long_clip], window_s=100.0)
    assert not np.allclose(whole, outputs, atol=1e-7)


def test_bad_clips_raise_clip_errors(w2v2: Path) -> None:
    teacher = load_teacher(f"hf:{w2v2}")
    with pytest.raises(ClipError) as error:
        teacher.predict([np.zeros(100, np.float32)])
    assert error.value.reason == "too_short"
    nan = signals(1.0)[0]
    nan[10] = np.nan
    with pytest.raises(ClipError) as error:
        teacher.predict([nan])
    assert error.value.reason == "non_finite_samples"


def test_ensemble_averages_members_and_parses_nested_specs(w2v2: Path, wavlm: Path) -> None:
    assert split_members("hf:a,[ensemble:hf:b,hf:c],onnx:d") == [
        "hf:a", "ensemble:hf:b,hf:c", "onnx:d"]
    ensemble = load_teacher(f"ensemble:hf:{w2v2},hf:{wavlm}")
    assert isinstance(ensemble, EnsembleTeacher)
    clips = signals(1.0, 1.5)
    expected = (load_teacher(f"hf:{w2v2}").predict(clips)
                + load_teacher(f"hf:{wavlm}").predict(clips)) / 2
    np.testing.assert_allclose(ensemble.predict(clips), expected, atol=1e-6)
    assert ensemble.is_random and "ensemble" in ensemble.teacher_id
    nested = load_teacher(f"ensemble:hf:{w2v2},[ensemble:hf:{w2v2},hf:{wavlm}]")
    members = nested.members
    assert isinstance(members[1], EnsembleTeacher) and len(members) == 2


@pytest.fixture(scope="module")
def onnx_file(w2v2: Path, tmp_path_factory) -> Path:
    """Exported through the CLI (which also checks parity on random signals)."""
    out = tmp_path_factory.mktemp("onnx") / "teacher.onnx"
    result = CliRunner().invoke(app, ["teacher", "export", "--teacher", f"hf:{w2v2}",
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["max_abs_diff_vs_torch"] <= 1e-4 and summary["spec"] == f"onnx:{out}"
    return out


def test_onnx_teacher_matches_torch(w2v2: Path, onnx_file: Path) -> None:
    path = onnx_file
    torch_teacher = load_teacher(f"hf:{w2v2}")
    onnx_teacher = load_teacher(f"onnx:{path}", threads=2)
    clips = signals(0.7, 1.3, 1.3, 12.0)
    a, na = torch_teacher.predict_with_windows(clips)
    b, nb = onnx_teacher.predict_with_windows(clips)
    assert np.abs(a - b).max() <= 1e-4
    assert (na == nb).all()
    assert onnx_teacher.source_teacher_id == torch_teacher.teacher_id
    assert onnx_teacher.is_random and "onnx" in onnx_teacher.teacher_id
    assert onnx_teacher.teacher_id != torch_teacher.teacher_id


def test_finetune_raises_ccc_on_human_labels(w2v2: Path, tmp_path: Path) -> None:
    lake, _ = make_audio_lake(str(tmp_path / "lake"), n=60, seconds=(1.0, 2.0))
    summary = finetune_teacher(lake, teacher=f"hf:{w2v2}", corpus="toy", out=tmp_path / "ft",
                               steps=250, seed=0)
    assert summary["ccc_after"]["mean"] > summary["ccc_before"]["mean"] + 0.2
    assert summary["ccc_after"]["arousal"] > 0.5
    tuned = load_teacher(summary["teacher"])
    assert not tuned.is_random and "random" not in tuned.teacher_id
    provenance = tuned.model.config.ser_provenance
    assert provenance["base_teacher_id"] == load_teacher(f"hf:{w2v2}").teacher_id
    assert provenance["corpus"] == ["toy"] and provenance["steps"] == 250
    with pytest.raises(TeacherError, match="only hf: teachers"):
        export_teacher_onnx(f"ensemble:hf:{w2v2},hf:{w2v2}", tmp_path / "e.onnx")
    with pytest.raises(TeacherError, match="human labels"):
        finetune_teacher(lake, teacher=f"hf:{w2v2}", corpus="nope", out=tmp_path / "x")


def _relaid(lake, url: str):
    """The same clips and labels in another lake, in two part files and reversed order."""
    from ser_pipeline.lake import Lake

    other = Lake.open(url)
    for table in ("audio", "human_labels"):
        rows = lake.read(table).to_pylist()[::-1]
        half = len(rows) // 2
        other.write_part(table, rows[:half], key=f"{table}-a")
        other.write_part(table, rows[half:], key=f"{table}-b")
    return other


def test_finetune_does_not_depend_on_the_lake_layout(w2v2: Path, tmp_path: Path) -> None:
    lake, _ = make_audio_lake(str(tmp_path / "lake"), n=24, seconds=(1.0, 1.5))
    relaid = _relaid(lake, str(tmp_path / "relaid"))
    a = finetune_teacher(lake, teacher=f"hf:{w2v2}", corpus="toy", out=tmp_path / "a",
                         steps=20, batch_size=8, views=3)
    b = finetune_teacher(relaid, teacher=f"hf:{w2v2}", corpus="toy", out=tmp_path / "b",
                         steps=20, batch_size=8, views=3)
    assert a["teacher_id"] == b["teacher_id"]


def test_augmented_views_keep_the_sound_and_the_teachers_minimum_length() -> None:
    from ser_pipeline.teacher.core import MIN_SAMPLES
    from ser_pipeline.teacher.finetune import augmented_view

    rng = np.random.default_rng(0)
    clip = np.arange(1, 16_001, dtype=np.float32)
    views = [augmented_view(clip, rng) for _ in range(200)]
    assert {float(np.sign(view[0])) for view in views} == {-1.0, 1.0}
    for view in views:
        assert 0.7 * clip.size - 1 <= view.size <= clip.size and view.dtype == np.float32
        start = int(abs(view[0])) - 1  # the samples are their own positions
        assert np.array_equal(np.abs(view), clip[start:start + view.size])
    for size in (MIN_SAMPLES, MIN_SAMPLES + 3, 100):
        lengths = {augmented_view(clip[:size], rng).size for _ in range(50)}
        assert min(lengths) == min(size, MIN_SAMPLES)


def test_finetune_views_make_the_teacher_deaf_to_the_waveform_sign(
        w2v2: Path, tmp_path: Path) -> None:
    """A listener (and a spectrogram student) cannot hear the sign of a waveform."""
    import audmetric

    lake, records = make_audio_lake(str(tmp_path / "lake"), n=60, seconds=(1.0, 2.0))
    clips = [record["signal"] for record in records]

    def sign_agreement(views: int) -> float:
        summary = finetune_teacher(lake, teacher=f"hf:{w2v2}", corpus="toy",
                                   out=tmp_path / f"v{views}", steps=250, views=views)
        assert summary["views"] == views
        teacher = load_teacher(summary["teacher"])
        plain = np.asarray(teacher.predict(clips))
        inverted = np.asarray(teacher.predict([-clip for clip in clips]))
        return min(audmetric.concordance_cc(plain[:, k], inverted[:, k]) for k in range(3))

    assert sign_agreement(8) > sign_agreement(1) + 0.1
    with pytest.raises(TeacherError, match="views must be 1 or more"):
        finetune_teacher(lake, teacher=f"hf:{w2v2}", corpus="toy", out=tmp_path / "x",
                         views=0)


def test_finetune_top_layers_changes_backbone(w2v2: Path, tmp_path: Path) -> None:
    lake, _ = make_audio_lake(str(tmp_path / "lake"), n=16, seconds=(1.0, 1.5))
    summary = finetune_teacher(lake, teacher=f"hf:{w2v2}", corpus="toy", out=tmp_path / "ft",
                               steps=3, batch_size=4, train_top_layers=1)
    before = load_file(str(w2v2 / "model.safetensors"))
    after = load_file(str(tmp_path / "ft" / "model.safetensors"))
    top = "wav2vec2.encoder.layers.1.feed_forward.output_dense.weight"
    bottom = "wav2vec2.encoder.layers.0.feed_forward.output_dense.weight"
    assert not torch.equal(before[top], after[top])
    assert torch.equal(before[bottom], after[bottom])
    assert summary["train_top_layers"] == 1


def test_full_finetune_trains_every_weight_and_head_only_trains_none_of_the_backbone(
        w2v2: Path, tmp_path: Path) -> None:
    lake, _ = make_audio_lake(str(tmp_path / "lake"), n=16, seconds=(1.0, 1.5))
    before = load_file(str(w2v2 / "model.safetensors"))
    conv = "wav2vec2.feature_extractor.conv_layers.0.conv.weight"
    layer = "wav2vec2.encoder.layers.0.feed_forward.output_dense.weight"
    head = "classifier.out_proj.weight"
    full = finetune_teacher(lake, teacher=f"hf:{w2v2}", corpus="toy", out=tmp_path / "full",
                            steps=2, batch_size=4, train_all=True, views=2)
    after = load_file(str(tmp_path / "full" / "model.safetensors"))
    assert all(not torch.equal(before[key], after[key]) for key in (conv, layer, head))
    assert full["train_all"] is True
    provenance = json.loads((tmp_path / "full" / "config.json").read_text())["ser_provenance"]
    assert provenance["train_all"] is True
    finetune_teacher(lake, teacher=f"hf:{w2v2}", corpus="toy", out=tmp_path / "head",
                     steps=2, batch_size=4)
    head_only = load_file(str(tmp_path / "head" / "model.safetensors"))
    assert torch.equal(before[conv], head_only[conv])
    assert torch.equal(before[layer], head_only[layer])
    assert not torch.equal(before[head], head_only[head])


def test_cli_init_info_export_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    folder = tmp_path / "cli-teacher"
    result = runner.invoke(app, ["teacher", "init", str(folder), "--arch", "wavlm", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["is_random"] is True
    result = runner.invoke(app, ["teacher", "info", f"hf:{folder}", "--json"])
    info = json.loads(result.stdout)
    assert info["parameters"] > 10_000 and "random" in info["teacher_id"]
    result = runner.invoke(app, ["teacher", "export", "--teacher", f"hf:{folder}",
                                 "--out", str(tmp_path / "t.txt")])
    assert result.exit_code == 2 and ".onnx" in result.output
    result = runner.invoke(app, ["teacher", "info", "bogus:spec"])
    assert result.exit_code == 2 and "unknown teacher spec" in result.output


def test_onnx_int8_export_is_marked_safe_and_faithful(w2v2: Path, tmp_path: Path) -> None:
    import onnx

    from ser_pipeline.quantize import saturation_risks
    from ser_pipeline.teacher.onnx import INT8_FIDELITY_MIN, fp32_sibling

    path = export_teacher_onnx(f"hf:{w2v2}", tmp_path / "int8.onnx", int8=True)
    assert fp32_sibling(path).is_file()  # the fp32 fallback travels with it
    assert saturation_risks(path) == []  # u8 weights: exact on CPUs with or without VNNI
    quantized = load_teacher(f"onnx:{path}")
    info = quantized.info()
    assert "int8" in quantized.teacher_id and info["precision"] == "int8"
    assert info["int8_fallback"] is None
    assert min(info["int8_ccc_vs_fp32"].values()) >= INT8_FIDELITY_MIN
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
            .metadata_props}
    recipe = json.loads(meta["ser_int8_recipe"])
    assert recipe["weight_type"] == "uint8" and recipe["op_types"] == ["MatMul"]
    assert json.loads(meta["ser_int8_machine"])["kind"]
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    clips = signals(1.0, 2.0, 3.0)
    reference = load_teacher(f"hf:{w2v2}").predict(clips)
    assert np.abs(quantized.predict(clips) - reference).max() < 0.02


def _restamp(path: Path, **values: str) -> None:
    import onnx

    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key in values:
            prop.value = values.pop(prop.key)
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def test_int8_teacher_below_fidelity_or_saturating_labels_with_fp32(w2v2: Path, tmp_path: Path,
                                                                    caplog) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from ser_pipeline.teacher.onnx import fp32_sibling

    path = export_teacher_onnx(f"hf:{w2v2}", tmp_path / "t.onnx", int8=True)
    fp32 = load_teacher(f"onnx:{fp32_sibling(path)}")
    # recorded fidelity below the bar (as a weak int8 export would measure it)
    _restamp(path, ser_int8_ccc_vs_fp32=json.dumps({"arousal": 0.97, "dominance": 0.999,
                                                    "valence": 0.999}))
    with caplog.at_level("WARNING", logger="ser_pipeline.teacher.onnx"):
        fallback = load_teacher(f"onnx:{path}")
    assert fallback.precision == "fp32" and fallback.teacher_id == fp32.teacher_id
    assert "A 0.9700 < 0.99" in fallback.info()["int8_fallback"]
    assert any("labeling with the fp32 model" in r.getMessage() for r in caplog.records)
    # an int8 file with full-range s8 weights (the old export): flagged on any CPU
    saturating = tmp_path / "old.onnx"
    quantize_dynamic(str(fp32_sibling(path)), str(saturating), weight_type=QuantType.QInt8,
                     per_channel=True, op_types_to_quantize=["MatMul"])
    shutil.copy(fp32_sibling(path), fp32_sibling(saturating))
    _restamp(saturating, ser_precision="int8", ser_fp32_file=fp32_sibling(saturating).name,
             ser_fp32_sha256=fp32.sha256,
             ser_int8_ccc_vs_fp32=json.dumps({"arousal": 1.0, "dominance": 1.0, "valence": 1.0}))
    old = load_teacher(f"onnx:{saturating}")
    assert old.precision == "fp32" and "saturate on CPUs without VNNI" in old.int8_fallback
    # no fp32 file to fall back on: an error that names the fix, never silent int8
    fp32_sibling(saturating).unlink()
    with pytest.raises(TeacherError, match="re-export"):
        load_teacher(f"onnx:{saturating}")
