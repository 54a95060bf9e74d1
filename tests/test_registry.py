"""Registry: publish/list/show/fetch on a local dir and on a real S3 server (moto)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import duckdb
import pytest
from onnx_runs import SNAPSHOT, exported, make_run  # noqa: F401
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.config import Settings
from ser_pipeline.cpu import CpuInfo, cpu_info
from ser_pipeline.hashing import canonical_hash
from ser_pipeline.onnx_model import OnnxModel, read_metadata
from ser_pipeline.registry import (
    MANIFEST_SCHEMA,
    MANIFEST_SCHEMA_V1,
    IntegrityError,
    ModelNotFoundError,
    Registry,
    RegistryError,
    VersionExistsError,
    read_manifest,
    resolve_model,
    resolve_model_uri,
)

V1 = Path(__file__).parent / "data" / "registry-v1"


@pytest.fixture(params=["local", "s3"])
def registry_url(request, tmp_path) -> str:
    if request.param == "s3":
        env = request.getfixturevalue("s3_env")
        return f"s3://{env['bucket']}/registry"
    return str(tmp_path / "registry")


def _registry(url: str, tmp_path) -> Registry:
    return Registry(url, settings=Settings(registry=url, db=str(tmp_path / "ser.duckdb"),
                                           cache_dir=str(tmp_path / "cache")))


def _files(registry: Registry) -> set[str]:
    fs, root = registry.storage.fs, registry.storage.root
    fs.invalidate_cache()
    return {p for p in fs.find(root)} if fs.exists(root) else set()


def test_publish_list_show_fetch_round_trip(exported, registry_url, tmp_path):  # noqa: F811
    registry = _registry(registry_url, tmp_path)
    manifest = registry.publish(exported["result"], name="toy-w2s")
    assert manifest.version == 1 and manifest.uri == "registry://toy-w2s@1"
    assert registry.show("toy-w2s") == manifest
    folder = "models/toy-w2s/1"
    assert set(registry.storage.list(folder)) == {f"{folder}/{n}" for n in (
        "model.onnx", "model.int8.onnx", "model.yaml", "manifest.json", "README.md")}
    for name, info in manifest.files.items():
        data = registry.storage.read_bytes(f"{folder}/{name}")
        assert len(data) == info.bytes
        assert hashlib.sha256(data).hexdigest() == info.sha256
    assert manifest.license.id == "cc-by-nc-sa-4.0" and manifest.warnings
    provenance = manifest.provenance
    assert provenance.teacher_sha256 == "ab" * 32
    assert provenance.lake_snapshot == SNAPSHOT and provenance.git_sha == "0123abc"
    assert provenance.input == "signal" and provenance.labels == [
        "arousal", "dominance", "valence"]
    assert canonical_hash(provenance.model_dump(mode="json")) == manifest.manifest_hash
    assert manifest.ccc[0].source == "run.best_dev_ccc" and manifest.ccc[0].valence == 0.43
    assert manifest.packages["onnxruntime"] and manifest.min_samples == 1024
    # each fact once: run id, student and teacher appear in provenance and nowhere else
    text = registry.storage.read_bytes(f"{folder}/manifest.json").decode()
    stored = json.loads(text)
    assert stored["schema"] == MANIFEST_SCHEMA and stored["uri"] == "registry://toy-w2s@1"
    for fact in (provenance.run_id, provenance.teacher_id, provenance.student):
        assert text.count(json.dumps(fact)) == 1, fact
    assert "training_run" not in stored and "teacher" not in stored
    # a second publish: version 2, latest moves
    registry.publish(exported["result"], name="toy-w2s")
    rows = registry.list_models()
    assert [(r["name"], r["version"], r["latest"]) for r in rows] == [
        ("toy-w2s", 1, False), ("toy-w2s", 2, True)]
    assert {r["run_id"] for r in rows} == {exported["run_id"]}
    path = resolve_model_uri("registry://toy-w2s", settings=registry.settings,
                             registry=registry_url)
    assert path.name == registry.show("toy-w2s", 2).serving.default_file
    assert "/toy-w2s/2/" in str(path)
    assert read_metadata(path)["manifest_hash"] == manifest.manifest_hash
    fp32 = resolve_model_uri("registry://toy-w2s@1#fp32", settings=registry.settings,
                             registry=registry_url)
    assert fp32.name == "model.onnx" and OnnxModel(fp32).labels[0] == "arousal"
    # DuckDB models table
    with duckdb.connect(str(tmp_path / "ser.duckdb")) as con:
        rows = con.execute("SELECT CAST(version AS INTEGER), student, run_id, teacher_id, "
                           "size_bytes FROM models WHERE name = 'toy-w2s' ORDER BY 1"
                           ).fetchall()
    served = [registry.show("toy-w2s", v) for v in (1, 2)]
    assert rows == [(m.version, "wav2small", exported["run_id"], provenance.teacher_id,
                     m.files[m.serving.default_file].bytes) for m in served]


def test_existing_version_is_an_error_and_changes_nothing(exported, registry_url,  # noqa: F811
                                                           tmp_path):
    registry = _registry(registry_url, tmp_path)
    registry.publish(exported["result"], name="m", version=3, record_db=False)
    before = {p: registry.storage.fs.cat_file(p) for p in _files(registry)
              if not p.rsplit("/", 1)[-1].startswith(".tmp-")}
    with pytest.raises(VersionExistsError, match="m@3 already exists"):
        registry.publish(exported["result"], name="m", version=3, record_db=False)
    after = {p: registry.storage.fs.cat_file(p) for p in _files(registry)
             if not p.rsplit("/", 1)[-1].startswith(".tmp-")}
    assert after == before


class _DiesBeforeManifest(Registry):
    def _write_manifest(self, folder, manifest):
        raise OSError("simulated crash after the model files, before the manifest")


class _ChecksManifestFirst(Registry):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[bool] = []

    def _update_latest(self, name, version, manifest):
        self.seen.append(self.storage.exists(f"models/{name}/{version}/manifest.json"))
        return super()._update_latest(name, version, manifest)


def test_interrupted_publish_is_invisible_and_latest_unchanged(exported, registry_url,  # noqa: F811
                                                               tmp_path):
    good = _registry(registry_url, tmp_path)
    good.publish(exported["result"], name="m", record_db=False)
    crashing = _DiesBeforeManifest(registry_url, settings=good.settings)
    with pytest.raises(RegistryError, match="cannot be written"):
        crashing.publish(exported["result"], name="m", record_db=False)
    assert good.storage.exists("models/m/2/model.onnx")  # the files did land...
    assert [r["version"] for r in good.list_models()] == [1]  # ...but are invisible
    assert json.loads(good.storage.read_bytes("models/m/latest.json"))["version"] == 1
    with pytest.raises(ModelNotFoundError):
        good.show("m", 2)
    with pytest.raises(VersionExistsError, match="interrupted"):
        good.publish(exported["result"], name="m", version=2, record_db=False)
    checker = _ChecksManifestFirst(registry_url, settings=good.settings)
    assert checker.publish(exported["result"], name="m", record_db=False).version == 3
    assert checker.seen == [True]  # latest moved only once the manifest existed
    assert good.latest_version("m") == 3


def test_concurrent_publishes_give_two_complete_versions(exported, registry_url,  # noqa: F811
                                                         tmp_path):
    registry = _registry(registry_url, tmp_path)
    results, errors = [], []

    def publish():
        try:
            results.append(Registry(registry_url, settings=registry.settings).publish(
                exported["result"], name="race", record_db=False).version)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sorted(results) == [1, 2]
    assert registry.versions("race") == [1, 2]
    assert registry.latest_version("race") == 2
    for version in (1, 2):
        assert len(registry.show("race", version).files) == 3


def test_sha_mismatch_is_detected(exported, registry_url, tmp_path):  # noqa: F811
    registry = _registry(registry_url, tmp_path)
    registry.publish(exported["result"], name="m", record_db=False)
    folder, manifest = registry.fetch("m")
    # a corrupted cache is repaired from the registry
    (folder / "model.int8.onnx").write_bytes(b"garbage")
    folder, _ = registry.fetch("m")
    assert OnnxModel(folder / "model.int8.onnx")
    # a corrupted registry file is a hard error naming it
    registry.storage.write_bytes("models/m/1/model.int8.onnx", b"tampered bytes")
    (folder / "model.int8.onnx").write_bytes(b"stale")
    with pytest.raises(IntegrityError, match="model.int8.onnx"):
        resolve_model_uri("registry://m@1", settings=registry.settings, registry=registry_url)


def test_names_are_validated(exported, registry_url, tmp_path):  # noqa: F811
    registry = _registry(registry_url, tmp_path)
    for bad in ("../evil", "/abs", "a/b", "..", ""):
        with pytest.raises(ValueError):
            registry.publish(exported["result"], name=bad, record_db=False)
    with pytest.raises(ValueError):
        resolve_model_uri("registry://../../etc", settings=registry.settings,
                          registry=registry_url)
    assert registry.names() == []
    with pytest.raises(ModelNotFoundError, match="not found"):
        registry.show("nope")


def test_parity_failure_blocks_publish(exported, registry_url, tmp_path):  # noqa: F811
    registry = _registry(registry_url, tmp_path)
    failed = exported["result"].model_copy(deep=True)
    failed.parity.passed = False
    with pytest.raises(RegistryError, match="parity did not pass"):
        registry.publish(failed, name="m", record_db=False)
    runless = exported["result"].model_copy(deep=True)
    runless.run = None  # what export_model (no training run) returns
    with pytest.raises(RegistryError, match="no training run"):
        registry.publish(runless, name="m", record_db=False)
    assert registry.names() == []


def test_cli_publish_fp32_only_when_int8_fails_then_list_show_predict(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich folds table cells at the terminal width
    monkeypatch.setenv("SER_DB", str(tmp_path / "ser.duckdb"))
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    registry = str(tmp_path / "registry")
    lake, run_id, records = make_run(str(tmp_path / "lake"), n=24, n_dev=10)
    make_run("", run_id="tampered-run", outlier=3000.0, n_dev=10, lake=lake, records=records)
    runner = CliRunner()
    fp32_only = runner.invoke(app, ["publish", "--run", "tampered-run", "--name", "toy",
                                    "--lake", lake.url, "--registry", registry, "--engine",
                                    "local", "--json"])
    assert fp32_only.exit_code == 0, fp32_only.output
    summary = json.loads(fp32_only.stdout)
    assert summary["int8_bytes"] is None and summary["int8_withheld"].startswith("int8 parity")
    manifest = Registry(registry).show("toy", 1)
    assert set(manifest.files) == {"model.onnx", "model.yaml"}
    assert manifest.serving.default_file == "model.onnx" and manifest.int8.withheld
    assert manifest.serving.reason.startswith("no int8 file (int8 parity")
    assert min(manifest.parity.int8_vs_fp32.values()) < 0.98  # the numbers are kept
    assert any("int8 withheld" in w for w in manifest.warnings)
    shown = runner.invoke(app, ["models", "show", "toy@1", "--registry", registry])
    assert "withheld: int8 parity" in shown.output
    wav = tmp_path / "clip.wav"
    import soundfile

    soundfile.write(wav, records[0]["signal"], 16000)
    predicted = runner.invoke(app, ["predict", "registry://toy@1", str(wav), "--registry",
                                    registry, "--json"])
    assert predicted.exit_code == 0, predicted.output
    notices = [line for line in predicted.stderr.splitlines() if "serving fp32" in line]
    assert len(notices) == 1 and "no int8 file (int8 parity" in notices[0]
    forced = runner.invoke(app, ["predict", "registry://toy@1#int8", str(wav), "--registry",
                                 registry, "--json"])
    assert forced.exit_code == 0, forced.output
    notices = [line for line in forced.stderr.splitlines() if "using fp32" in line]
    assert len(notices) == 1 and "no int8 model (int8 parity" in notices[0]
    assert json.loads(forced.stdout) == json.loads(predicted.stdout)

    ok = runner.invoke(app, ["publish", "--run", run_id, "--name", "toy", "--lake", lake.url,
                             "--registry", registry, "--engine", "local", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["uri"] == "registry://toy@2"
    assert json.loads(ok.stdout)["int8_bytes"] > 0
    listed = runner.invoke(app, ["models", "list", "--registry", registry, "--json"])
    rows = json.loads(listed.stdout)["models"]
    assert [(m["version"], m["int8_bytes"] is None) for m in rows] == [(1, True), (2, False)]
    shown = runner.invoke(app, ["models", "show", "toy@2", "--registry", registry, "--json"])
    manifest = json.loads(shown.stdout)
    assert manifest["provenance"]["run_id"] == run_id and manifest["int8"]["recipe"]["name"]
    assert manifest["machine"]["kind"] == cpu_info().kind
    assert manifest["serving"]["measured_on"]["kind"] == cpu_info().kind
    text = runner.invoke(app, ["models", "show", "toy@2", "--registry", registry]).output
    assert "parity_measured_on" in text and "activations uint8" in text
    missing = runner.invoke(app, ["models", "show", "nope", "--registry", registry])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_unwritable_registry_is_a_clear_error_without_secrets(exported, s3_env,  # noqa: F811
                                                              tmp_path):
    settings = Settings(db=str(tmp_path / "db"), cache_dir=str(tmp_path / "c"))
    registry = Registry("s3://no-such-bucket-ser/reg", settings=settings)
    with pytest.raises(RegistryError, match="cannot be written") as caught:
        registry.publish(exported["result"], name="m", record_db=False)
    assert "testing-secret-key" not in str(caught.value)
    ok = Registry(f"s3://{s3_env['bucket']}/r", settings=settings)
    manifest = ok.publish(exported["result"], name="m", record_db=False).to_json()
    assert "testing-secret-key" not in manifest
    assert "testing-key-id" not in manifest


def test_audonnx_loads_a_published_folder(exported, tmp_path):  # noqa: F811
    audonnx = pytest.importorskip("audonnx")  # in the test extra; skipped only if absent
    import numpy as np

    registry = _registry(str(tmp_path / "registry"), tmp_path)
    registry.publish(exported["result"], name="m", record_db=False)
    folder, _ = registry.fetch("m")
    model = audonnx.load(str(folder))
    assert model.outputs["logits"].labels == ["arousal", "dominance", "valence"]
    signal = exported["records"][0]["signal"][None, :]
    got = model.sess.run(["logits"], {"signal": signal})[0]
    np.testing.assert_allclose(got, OnnxModel(folder / "model.onnx").run(signal), atol=1e-6)


def test_publish_flow(exported, prefect_harness, tmp_path, monkeypatch):  # noqa: F811
    from flows.publish import publish_flow

    monkeypatch.setenv("SER_DB", str(tmp_path / "ser.duckdb"))
    registry = str(tmp_path / "registry")
    summary = publish_flow(run_id=exported["run_id"], name="flowed",
                           lake=exported["lake"].url, registry=registry,
                           calibration_clips=4)
    assert summary["uri"] == "registry://flowed@1"
    assert Registry(registry).latest_version("flowed") == 1


def _copy_v1(registry_url: str, tmp_path: Path) -> Registry:
    """The schema-1 version of tests/data published into ``registry_url`` byte for byte."""
    registry = _registry(registry_url, tmp_path)
    for path in sorted(V1.rglob("*")):
        if path.is_file():
            registry.storage.write_bytes(str(path.relative_to(V1)), path.read_bytes())
    return registry


def test_a_version_published_before_the_typed_manifest_still_works(exported,  # noqa: F811
                                                                    registry_url, tmp_path):
    registry = _copy_v1(registry_url, tmp_path)
    old = json.loads((V1 / "models/toy-w2s/1/manifest.json").read_text())
    manifest = registry.show("toy-w2s")
    assert manifest.read_from_schema == MANIFEST_SCHEMA_V1
    assert (manifest.version, manifest.run_id, manifest.student, manifest.teacher_id) == (
        1, old["run_id"], old["student"], old["teacher_id"])
    assert canonical_hash(manifest.provenance.model_dump(mode="json")) == \
        old["manifest_hash"]
    assert manifest.training.corpora == old["training_run"]["corpora"]
    assert manifest.performance.int8.latency_ms == old["performance"]["int8"]["latency_ms"]
    assert manifest.machine.kind == old["int8"]["parity_machine"]["kind"]
    assert [r["run_id"] for r in registry.list_models()] == [old["run_id"]]
    # fetched with every sha256 checked, through the alias written by the old code
    folder, fetched = registry.fetch("toy-w2s")
    assert fetched == manifest and (folder / "model.int8.onnx").is_file()
    # its recorded fp32/int8 latencies choose the file served, as for new manifests
    latencies = (old["int8"]["fp32_latency_ms"], old["int8"]["int8_latency_ms"])
    faster = "model.onnx" if latencies[0] < latencies[1] else "model.int8.onnx"
    path, notice = resolve_model("registry://toy-w2s", settings=registry.settings,
                                 registry=registry_url)
    assert path.name == faster and MANIFEST_SCHEMA_V1 in notice and "faster" in notice
    assert resolve_model("registry://toy-w2s#int8", settings=registry.settings,
                         registry=registry_url) == (folder / "model.int8.onnx", None)
    # the old model still runs; a new version lands next to the old one
    assert OnnxModel(path).predict([exported["records"][0]["signal"]]).shape == (1, 3)
    assert registry.publish(exported["result"], name="toy-w2s", record_db=False).version == 2
    assert registry.latest_version("toy-w2s") == 2 and registry.show("toy-w2s", 1) == manifest


def test_old_manifest_without_latencies_serves_int8_with_a_note(tmp_path):
    folder = tmp_path / "toy"
    shutil.copytree(V1 / "models/toy-w2s/1", folder)
    old = json.loads((folder / "manifest.json").read_text())
    del old["int8"]["fp32_latency_ms"], old["int8"]["int8_latency_ms"]
    (folder / "manifest.json").write_text(json.dumps(old))
    settings = Settings(cache_dir=str(tmp_path / "cache"))
    got, notice = resolve_model(str(folder), settings=settings)
    assert got == folder / "model.int8.onnx"
    assert "no fp32/int8 latency pair recorded: int8, as before" in notice
    assert read_manifest(json.dumps(old)).serving.default_file == "model.int8.onnx"
    assert resolve_model(f"{folder}#fp32", settings=settings) == (folder / "model.onnx", None)


@pytest.mark.parametrize(("fp32_ms", "int8_ms", "served"), [
    (3.0, 9.0, "model.onnx"), (9.0, 3.0, "model.int8.onnx")])
def test_the_faster_file_is_served_by_default_and_the_card_says_so(
        exported, tmp_path, fp32_ms, int8_ms, served):  # noqa: F811
    export = exported["result"].model_copy(deep=True)
    export.latency.fp32_ms, export.latency.int8_ms = fp32_ms, int8_ms
    registry = _registry(str(tmp_path / "registry"), tmp_path)
    manifest = registry.publish(export, name="fast", record_db=False)
    assert manifest.serving.default_file == served
    assert (manifest.serving.fp32_ms, manifest.serving.int8_ms) == (fp32_ms, int8_ms)
    assert manifest.serving.measured_on == cpu_info()
    settings = registry.settings
    path, notice = resolve_model("registry://fast", settings=settings,
                                 registry=registry.url)
    winner, loser = ("fp32", "int8") if served == "model.onnx" else ("int8", "fp32")
    assert path.name == served and f"serving {winner} ({served})" in notice
    assert f"{winner} is faster: 3.0 ms vs {loser} 9.0 ms per 5 s clip" in notice
    assert len(notice.splitlines()) == 1 and f"#{loser} forces {loser}" in notice
    for precision, file_name in (("int8", "model.int8.onnx"), ("fp32", "model.onnx")):
        assert resolve_model(f"registry://fast#{precision}", settings=settings,
                             registry=registry.url) == (path.parent / file_name, None)
    card = (tmp_path / "registry/models/fast/1/README.md").read_text()
    assert f"serves `{served}`: {winner} is faster" in card


def test_publishing_on_another_cpu_times_both_files_again(exported, tmp_path):  # noqa: F811
    export = exported["result"].model_copy(deep=True)
    export.machine = CpuInfo(machine="aarch64", model="elsewhere", kind="ARM64", flags={})
    export.latency.fp32_ms = export.latency.int8_ms = 1e6  # not this machine's figures
    manifest = _registry(str(tmp_path / "registry"), tmp_path).publish(
        export, name="moved", record_db=False)
    serving = manifest.serving
    assert serving.measured_on == cpu_info() and manifest.machine.kind == "ARM64"
    assert 0 < serving.fp32_ms < 1e5 and 0 < serving.int8_ms < 1e5
    assert serving.default_file == ("model.onnx" if serving.fp32_ms < serving.int8_ms
                                    else "model.int8.onnx")


def test_unknown_schema_and_renamed_keys_fail_loudly():
    from pydantic import ValidationError

    old = json.loads((V1 / "models/toy-w2s/1/manifest.json").read_text())
    current = json.loads(read_manifest(json.dumps(old)).to_json())
    again = read_manifest(json.dumps(current))  # schema 2 now, the same facts
    assert again.read_from_schema == MANIFEST_SCHEMA
    assert again.model_dump() == read_manifest(json.dumps(old)).model_dump()
    current["servng"] = current.pop("serving")
    with pytest.raises(ValidationError, match="servng"):
        read_manifest(json.dumps(current))
    with pytest.raises(RegistryError, match="upgrade ser-pipeline"):
        read_manifest(json.dumps({**old, "schema": "ser-pipeline/model-manifest/9"}))


def test_gate_holds_back_a_worse_version_and_allow_regression_moves_it(tmp_path,
                                                                        monkeypatch):
    from lakes import add_teacher_labels
    from onnx_runs import TEACHER

    from ser_pipeline.export import export_run
    from ser_pipeline.registry import publish_gated

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("SER_DB", str(tmp_path / "ser.duckdb"))
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    lake, good_run, records = make_run(str(tmp_path / "lake"), n=32, n_dev=12)
    add_teacher_labels(lake, records, teacher_id=TEACHER, noise=0.02)
    make_run("", run_id="worse-run", head_scale=-1.0, lake=lake, records=records)
    registry = _registry(str(tmp_path / "registry"), tmp_path)
    good, worse = (export_run(lake, run, out_dir=tmp_path / run, calibration_clips=8,
                              measure_performance=False) for run in (good_run, "worse-run"))
    first = publish_gated(lake, good, name="toy", registry=registry, record_db=False)
    assert first.gate.passed and first.gate.reason == "first version of toy: nothing to " \
        "compare with" and registry.latest_version("toy") == 1
    # significantly worse: published as version 2, latest stays on version 1
    held = publish_gated(lake, worse, name="toy", registry=registry, record_db=False)
    assert held.version == 2 and not held.gate.passed and not held.gate.promoted
    assert registry.latest_version("toy") == 1
    assert held.gate.reason.startswith("held back: toy/dev: candidate is significantly "
                                       "worse than toy@1: ")
    assert held.gate.reason.endswith("; latest stays toy@1")
    assert held.gate.compared_with == "toy@1" and held.gate.corpora == ["toy"]
    assert {r.split(":")[0] for r in held.gate.regressed} == {"toy"}
    assert registry.show("toy", 2).gate == held.gate  # kept for audit, in the manifest
    assert "/toy/1/" in str(resolve_model_uri("registry://toy", settings=registry.settings,
                                              registry=registry.url))
    rows = [r for r in lake.read("comparisons").to_pylist()
            if r["comparison_id"] in held.gate.comparison_ids]
    assert {r["purpose"] for r in rows} == {"gate"} and len(rows) == 4
    assert {r["model_b"] for r in rows} == {"toy@1"}
    assert any(r["verdict"] == "worse" and r["delta_hi"] < 0 for r in rows)
    # --allow-regression moves latest anyway, and says so
    allowed = publish_gated(lake, worse, name="toy", registry=registry, record_db=False,
                            allow_regression=True)
    assert allowed.version == 3 and registry.latest_version("toy") == 3
    assert not allowed.gate.passed and allowed.gate.promoted and allowed.gate.allow_regression
    assert "--allow-regression: latest moved anyway" in allowed.gate.reason
    # a better one (than the worse latest) and an equal one (identical model) move it
    better = publish_gated(lake, good, name="toy", registry=registry, record_db=False)
    assert better.gate.passed and registry.latest_version("toy") == 4
    assert "not significantly worse than toy@3" in better.gate.reason
    equal = publish_gated(lake, good, name="toy", registry=registry, record_db=False)
    assert equal.gate.passed and registry.latest_version("toy") == 5
    assert "mean ΔCCC +0.000" in equal.gate.reason
    # a gate that cannot compare fails closed: published, latest unchanged, reason given
    blind = publish_gated(lake, good, name="toy", registry=registry, record_db=False,
                          gate_corpora=["elsewhere"])
    assert not blind.gate.passed and registry.latest_version("toy") == 5
    assert blind.gate.reason.startswith("not compared with toy@5: corpus 'elsewhere' is not")
    # the CLI: models list shows the gate, promote points latest at a held-back version
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "--registry", registry.url])
    assert listed.exit_code == 0 and "held back" in listed.output
    promoted = runner.invoke(app, ["models", "promote", "toy@2", "--registry", registry.url,
                                   "--json"])
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout)["latest_was"] == "toy@5"
    assert registry.latest_version("toy") == 2
    bare = runner.invoke(app, ["models", "promote", "toy", "--registry", registry.url])
    assert bare.exit_code == 2 and "toy@VERSION" in bare.output


def test_cli_publish_allow_regression_moves_latest(tmp_path, monkeypatch):
    from lakes import add_teacher_labels
    from onnx_runs import TEACHER

    monkeypatch.setenv("SER_DB", str(tmp_path / "ser.duckdb"))
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    registry = str(tmp_path / "registry")
    lake, good_run, records = make_run(str(tmp_path / "lake"), n=32, n_dev=12)
    add_teacher_labels(lake, records, teacher_id=TEACHER, noise=0.02)
    make_run("", run_id="worse-run", head_scale=-1.0, lake=lake, records=records)
    runner = CliRunner()
    base = ["--lake", lake.url, "--registry", registry, "--engine", "local", "--json"]
    first = runner.invoke(app, ["publish", "--run", good_run, "--name", "toy", *base])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["latest"] is True
    worse = runner.invoke(app, ["publish", "--run", "worse-run", "--name", "toy",
                                "--gate-corpus", "toy", "--gate-split", "dev",
                                "--allow-regression", *base])
    assert worse.exit_code == 0, worse.output
    summary = json.loads(worse.stdout)
    assert summary["uri"] == "registry://toy@2" and summary["latest"] is True
    assert "significantly worse than toy@1" in summary["gate"]
    assert "--allow-regression: latest moved anyway" in summary["gate"]
    assert Registry(registry).latest_version("toy") == 2
