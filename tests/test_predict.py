"""Predict: registry models on audio files of several formats, windows, bad files, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from onnx_runs import exported  # noqa: F401
from typer.testing import CliRunner

from ser_pipeline.audio import decode
from ser_pipeline.cli import app
from ser_pipeline.config import Settings
from ser_pipeline.onnx_model import OnnxModel
from ser_pipeline.predict import predict_files
from ser_pipeline.registry import Registry


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
    Registry(url, settings=settings).publish(exported["result"], name="toy", record_db=False)
    rows = predict_files("registry://toy@latest", [str(audio_dir)], settings=settings)
    by_name = {row["file"].rsplit("/", 1)[-1]: row for row in rows}
    assert set(by_name) == {"a.wav", "b.flac", "c.ogg", "long.wav", "broken.wav"}
    assert "broken.wav" in by_name["broken.wav"]["error"]
    assert by_name["broken.wav"]["arousal"] is None
    assert by_name["long.wav"]["n_windows"] == 3
    model = OnnxModel(tmp_path / "cache" / "registry" / next(
        p.name for p in (tmp_path / "cache" / "registry").iterdir()) / "models/toy/1"
        / "model.int8.onnx")
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
