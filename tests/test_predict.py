"""Predict: registry models on audio files of several formats, windows, bad files, CLI,
and the same outputs as ``ser evaluate --model`` (one student runner)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from onnx_runs import exported  # noqa: F401
from typer.testing import CliRunner

from ser_pipeline.audio import decode
from ser_pipeline.cli import app
from ser_pipeline.config import Settings
from ser_pipeline.hashing import sha256_file
from ser_pipeline.lake import Lake
from ser_pipeline.onnx_model import OnnxModel
from ser_pipeline.predict import predict_files
from ser_pipeline.registry import Registry
from ser_pipeline.schemas import LABELS


@pytest.fixture()
def audio_dir(exported, tmp_path):  # noqa: F811
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    signal = exported["records"][1]["signal"]
    sf.write(folder / "a.wav", signal, 16000, subtype="PCM_16")
    sf.write(folder / "sub" / "b.flac", exported["records"][2]["signal"], 16000)
    stereo_44k = np.stack([signal, signal], 1)
    sf.write(folder / "c.ogg", np.repeat(stereo_44k, 2, axis=0)[:, :], 32000)
    long = np.tile(signal, 20)[: 16000 * 25]
    sf.write(folder / "long.wav", long, 16000, subtype="FLOAT")
    (folder / "broken.wav").write_bytes(b"RIFF....not audio at all")
    return folder


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_predict_files_from_registry(exported, audio_dir, tmp_path, backend,  # noqa: F811
                                     request):
    if backend == "s3":
        url = f"s3://{request.getfixturevalue('s3_env')['bucket']}/reg"
    else:
        url = str(tmp_path / "reg")
    settings = Settings(registry=url, cache_dir=str(tmp_path / "cache"))
    manifest = Registry(url, settings=settings).publish(exported["result"], name="toy",
                                                       record_db=False)
    rows = predict_files("registry://toy@latest", [str(audio_dir)], settings=settings)
    by_name = {row["file"].rsplit("/", 1)[-1]: row for row in rows}
    assert set(by_name) == {"a.wav", "b.flac", "c.ogg", "long.wav", "broken.wav"}
    assert "broken.wav" in by_name["broken.wav"]["error"]
    assert by_name["broken.wav"]["arousal"] is None
    assert by_name["long.wav"]["n_windows"] == 3
    model = OnnxModel(tmp_path / "cache" / "registry" / next(
        p.name for p in (tmp_path / "cache" / "registry").iterdir()) / "models/toy/1"
        / manifest.serving.default_file)  # the file served without #int8/#fp32
    for name in ("a.wav", "c.ogg", "long.wav"):
        row = by_name[name]
        assert row["error"] is None
        signal = decode((audio_dir / name).read_bytes()).signal
        expected = model.predict([signal])[0]
        np.testing.assert_allclose([row["arousal"], row["dominance"], row["valence"]],
                                   expected, atol=1e-6)


def test_cli_predict_json_table_and_exit_code(exported, audio_dir, tmp_path,  # noqa: F811
                                              monkeypatch):
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    registry = str(tmp_path / "reg")
    Registry(registry, settings=Settings(registry=registry)).publish(
        exported["result"], name="toy", record_db=False)
    runner = CliRunner()
    good = runner.invoke(app, ["predict", "registry://toy", str(audio_dir / "a.wav"),
                               str(audio_dir / "sub"), "--registry", registry, "--json"])
    assert good.exit_code == 0, good.output
    rows = json.loads(good.stdout)
    assert len(rows) == 2 and all(0 <= r["n_windows"] <= 1 for r in rows)
    bad = runner.invoke(app, ["predict", str(exported["out_dir"] / "model.onnx"),
                              str(audio_dir / "broken.wav"), str(audio_dir / "a.wav"), "--json"])
    assert bad.exit_code == 1
    errors = {r["file"].rsplit("/", 1)[-1]: r["error"] for r in json.loads(bad.stdout)}
    assert "broken.wav" in errors["broken.wav"] and errors["a.wav"] is None
    table = runner.invoke(app, ["predict", str(exported["out_dir"]), str(audio_dir / "a.wav")])
    assert table.exit_code == 0 and "arousal" in table.output
    unknown = runner.invoke(app, ["predict", "registry://nope", str(audio_dir / "a.wav"),
                                  "--registry", registry])
    assert unknown.exit_code == 2 and "not found" in unknown.output


def test_predict_and_evaluate_give_identical_outputs(exported, tmp_path,  # noqa: F811
                                                     monkeypatch):
    """The same 16 kHz FLAC files through ``ser predict`` and, ingested into a lake,
    through ``ser evaluate --model``: the same numbers, to the last bit, for a clip shorter
    than 1,600 samples (padded), a one-window clip and one longer than a window."""
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    registry = str(tmp_path / "reg")
    Registry(registry, settings=Settings(registry=registry)).publish(
        exported["result"], name="toy", record_db=False)
    folder = tmp_path / "same"
    folder.mkdir()
    base = np.concatenate([r["signal"] for r in exported["records"][:6]])
    clips = {"short.flac": base[:1_200], "medium.flac": base[:24_000],
             "long.flac": np.tile(base, 12)[: 16_000 * 12]}  # 12 s: two 10 s windows
    for name, signal in clips.items():
        sf.write(folder / name, signal, 16000, subtype="PCM_16")
    runner = CliRunner()
    lake_url = str(tmp_path / "lake")
    from ser_pipeline.ingest import ingest

    assert ingest(Lake.open(lake_url), str(folder), corpus="same")["ingested"] == 3
    evaluated = runner.invoke(app, ["evaluate", "--model", "registry://toy", "--corpus",
                                    "same", "--lake", lake_url, "--registry", registry,
                                    "--engine", "local", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["predicted"] == 3
    predicted = runner.invoke(app, ["predict", "registry://toy", str(folder), "--registry",
                                    registry, "--json"])
    assert predicted.exit_code == 0, predicted.output
    stored = {r["audio_id"]: r for r in Lake.open(lake_url).read("predictions").to_pylist()}
    rows = json.loads(predicted.stdout)
    assert len(rows) == 3 and sorted(r["n_windows"] for r in rows) == [1, 1, 2]
    for row in rows:
        evaluated_row = stored[sha256_file(row["file"])]  # audio_id: sha256 of the bytes
        assert [row[d] for d in LABELS] == [evaluated_row[d] for d in LABELS], row["file"]
        assert row["n_windows"] == evaluated_row["n_windows"]


def test_exactly_one_module_opens_student_sessions():
    """Only the student runner (and the teacher's own runner) create ONNX Runtime sessions."""
    package = Path(__file__).resolve().parents[1] / "ser_pipeline"
    openers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (
                    getattr(node.func, "attr", None) == "InferenceSession"
                    or getattr(node.func, "id", None) == "InferenceSession"):
                openers.add(path.relative_to(package).as_posix())
    assert openers == {"onnx_model.py", "teacher/onnx.py"}
