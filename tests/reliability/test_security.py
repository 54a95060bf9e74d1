"""Security: no credentials in logs, artifacts, manifests or exceptions; names cannot
escape their roots; report parameters are bound; no pickle is ever unpickled.
"""

from __future__ import annotations

import json
import os
import subprocess
import traceback
from pathlib import Path

import boto3
import duckdb
import pytest
import s3fs
import torch
from eval_lake import evaluated_lake
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.config import Settings
from ser_pipeline.db import build_db
from ser_pipeline.lake import Lake
from ser_pipeline.registry import Registry, RegistryError
from ser_pipeline.runs import RunError, load_run_model, write_run_meta
from ser_pipeline.teacher import TeacherError, init_teacher, load_teacher

from .conftest import SER, cli_env, write_wavs
from .report import record

SUITE = "security"
KEY_ID = "AKIARELIABILITYKEY7Q"
SECRET = "rel+Secret/9f3c2b1a0d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
URL_PASSWORD = "UrlPassw0rd-5e6f7a"
SECRETS = (KEY_ID, SECRET, URL_PASSWORD)


def _leaks(text: str | bytes) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [s for s in SECRETS if s.encode() in data]


def _scan_tree(root: Path) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            leaks = _leaks(path.read_bytes())
            if leaks:
                found[str(path)] = leaks
    return found


def _ser(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*SER, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_no_credentials_in_logs_artifacts_manifests_or_errors(exported, moto_server,  # noqa: F811
                                                              tmp_path, monkeypatch):
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1",
                      aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    bucket = "ser-secrets-test"
    s3.create_bucket(Bucket=bucket)
    env = cli_env(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET,
                  AWS_DEFAULT_REGION="us-east-1", SER_S3_ENDPOINT_URL=moto_server,
                  SER_DB=str(tmp_path / "ser.duckdb"), SER_CACHE_DIR=str(tmp_path / "cache"),
                  SER_S3_MAX_ATTEMPTS="1")
    write_wavs(tmp_path / "wavs", 6, seed=3)
    (tmp_path / "wavs" / "broken.wav").write_bytes(b"RIFF\x00\x00")
    runs = {
        "ingest": _ser(["ingest", str(tmp_path / "wavs"), "--corpus", "sec", "--lake",
                        f"s3://{bucket}/lake", "--engine", "local", "--json"], env),
        "publish": _ser(["publish", "--run", exported["run_id"], "--name", "sec-model",
                         "--lake", exported["lake"].url, "--registry",
                         f"s3://{bucket}/registry", "--engine", "local", "--json"], env),
        "list": _ser(["models", "list", "--registry", f"s3://{bucket}/registry", "--json"],
                     env),
        # failing S3 calls: a missing bucket, and an endpoint URL with credentials in it
        "ingest_missing_bucket": _ser(["ingest", str(tmp_path / "wavs"), "--corpus", "sec",
                                       "--lake", "s3://no-such-bucket-rel/lake", "--engine",
                                       "local"], env),
        "publish_missing_bucket": _ser(["publish", "--run", exported["run_id"], "--name", "x",
                                        "--lake", exported["lake"].url, "--registry",
                                        "s3://no-such-bucket-rel/registry", "--engine",
                                        "local"], env),
        "userinfo_endpoint": _ser(["models", "list", "--registry", f"s3://{bucket}/none"],
                                  {**env, "SER_S3_ENDPOINT_URL": moto_server.replace(
                                      "http://", f"http://user:{URL_PASSWORD}@")}),
    }
    assert runs["ingest"].returncode == 0, runs["ingest"].stderr
    assert json.loads(runs["ingest"].stdout)["ingested"] == 6
    assert runs["publish"].returncode == 0, runs["publish"].stderr
    assert runs["list"].returncode == 0 and "sec-model" in runs["list"].stdout
    for name in ("ingest_missing_bucket", "publish_missing_bucket"):
        assert runs[name].returncode != 0, name
    assert "no-such-bucket-rel" in runs["publish_missing_bucket"].stderr
    for name, run in runs.items():
        assert not _leaks(run.stdout + run.stderr), (name, _leaks(run.stdout + run.stderr))

    # in-process exceptions, with their tracebacks
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("SER_S3_ENDPOINT_URL", moto_server)
    s3fs.S3FileSystem.clear_instance_cache()
    settings = Settings(db=str(tmp_path / "ser.duckdb"))
    with pytest.raises(RegistryError) as caught:
        Registry("s3://no-such-bucket-rel/registry", settings=settings).publish(
            exported["result"], name="x", record_db=False)
    text = str(caught.value) + repr(caught.value) + "".join(
        traceback.format_exception(caught.value))
    assert not _leaks(text) and "no-such-bucket-rel" in text
    assert not _leaks(repr(settings)) and not _leaks(str(settings.model_dump()))

    # every artifact: local files (lake, run folder, DuckDB file) and every object in S3
    assert not _scan_tree(tmp_path)
    assert not _scan_tree(Path(exported["lake"].url))
    objects = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert any(o["Key"].startswith("registry/models/sec-model/1/manifest") for o in objects)
    assert any(o["Key"].startswith("lake/audio/part-") for o in objects)
    for item in objects:
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        assert not _leaks(body), item["Key"]
    with duckdb.connect(str(tmp_path / "ser.duckdb"), read_only=True) as con:
        tables = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                             "WHERE data_type = 'VARCHAR'").fetchall()
        assert tables, "the publish should have recorded the model in DuckDB"
        for table, column in tables:
            hits = con.execute(f'SELECT count(*) FROM "{table}" WHERE ' + " OR ".join(
                f'strpos("{column}", ?) > 0' for _ in SECRETS), list(SECRETS)).fetchone()[0]
            assert hits == 0, (table, column)
    record(SUITE, test="credentials scan", trials=len(runs) + 1, faults=4, lost=0,
           duplicated=0, objects_scanned=len(objects))


def test_names_cannot_escape_their_roots(tmp_path, exported):  # noqa: F811
    runner = CliRunner()
    wavs = tmp_path / "wavs"
    write_wavs(wavs, 2, seed=4)
    lake = tmp_path / "box" / "lake"
    registry = tmp_path / "box" / "registry"
    bad_names = ["../x", "/tmp/abs", "a/../../b", "..", "x/y"]
    trials = 0
    for bad in bad_names:
        result = runner.invoke(app, ["ingest", str(wavs), "--corpus", bad, "--lake", str(lake),
                                     "--engine", "local"])
        assert result.exit_code == 2 and "invalid corpus name" in result.output, result.output
        result = runner.invoke(app, ["publish", "--run", exported["run_id"], "--name", bad,
                                     "--lake", exported["lake"].url, "--registry",
                                     str(registry), "--engine", "local"])
        assert result.exit_code == 2 and "invalid model name" in result.output, result.output
        result = runner.invoke(app, ["publish", "--run", bad, "--name", "ok", "--lake",
                                     exported["lake"].url, "--registry", str(registry),
                                     "--engine", "local"])
        assert result.exit_code == 2 and "invalid run id" in result.output, result.output
        result = runner.invoke(app, ["report", bad, "--db", str(tmp_path / "none.duckdb")])
        assert result.exit_code == 2 and "no report named" in result.output, result.output
        result = runner.invoke(app, ["models", "show", bad, "--registry", str(registry)])
        assert result.exit_code == 2 and "invalid model name" in result.output, result.output
        trials += 5
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                     if not str(p.relative_to(tmp_path)).startswith("wavs"))
    assert written == [], written  # nothing written anywhere, inside or outside the roots
    assert not Path("/tmp/abs").exists() and not (tmp_path / "x").exists()
    record(SUITE, test="names outside roots", trials=trials, faults=trials, lost=0,
           duplicated=0)


def test_report_parameters_are_bound_at_the_cli(tmp_path):
    lake, _ = evaluated_lake(str(tmp_path / "lake"), n=8)
    db = build_db(lake, out=tmp_path / "ser.duckdb")["db"]
    with duckdb.connect(db, read_only=True) as con:
        before = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
    runner = CliRunner()
    evil = ["' OR 1=1; DROP TABLE metrics; --", "toy' OR '1'='1", "toy\"; SELECT 1; --"]
    for value in evil:
        result = runner.invoke(app, ["report", "label_coverage", "--db", db, "--format",
                                     "json", "--param", f"corpus={value}"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == []  # the value is data: no corpus has that name
    result = runner.invoke(app, ["report", "label_coverage", "--db", db, "--format", "json",
                                 "--param", "corpus=toy"])
    assert json.loads(result.stdout)[0]["clips"] == 8  # the same report with a real value
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] == before
    record(SUITE, test="report params bound", trials=len(evil), faults=len(evil), lost=0,
           duplicated=0)


class _Bomb:
    """Unpickling this runs ``touch <marker>``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bomb(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": _Bomb(marker)}, path)
    return path


def test_pickle_bombs_are_refused(tmp_path, exported):  # noqa: F811
    marker = tmp_path / "PWNED"
    # the bomb is real: an unrestricted torch.load runs it (in a child process)
    probe = _bomb(tmp_path / "probe.pt", tmp_path / "probe-marker")
    subprocess.run([SER[0].replace("/ser", "/python"), "-c",
                    f"import torch; torch.load({str(probe)!r}, weights_only=False)"],
                   check=False, capture_output=True, timeout=120)
    assert (tmp_path / "probe-marker").exists(), "the test bomb must be able to go off"

    lake = Lake.open(str(tmp_path / "lake"))
    trials = 0
    for run_id, name in (("bomb-pt", "ckpt-00000001.pt"),
                         ("bomb-st", "ckpt-00000001.safetensors")):
        _bomb(Path(lake.storage.path(f"runs/{run_id}/{name}")), marker)
        write_run_meta(lake, run_id, {"student": "wav2small", "student_options": {},
                                      "best_checkpoint": f"runs/{run_id}/{name}",
                                      "last_checkpoint": f"runs/{run_id}/{name}"})
        with pytest.raises(RunError):
            load_run_model(lake, run_id)
        result = CliRunner().invoke(app, ["publish", "--run", run_id, "--name", "bomb",
                                          "--lake", lake.url, "--registry",
                                          str(tmp_path / "registry"), "--engine", "local"])
        assert result.exit_code == 2 and "error:" in result.output, result.output
        trials += 2
    teacher = init_teacher(tmp_path / "teacher", arch="wav2vec2", size="tiny")
    for weights in teacher.glob("*.safetensors"):
        weights.unlink()
    _bomb(teacher / "pytorch_model.bin", marker)
    with pytest.raises(TeacherError):
        load_teacher(f"hf:{teacher}")
    result = CliRunner().invoke(app, ["teacher", "info", f"hf:{teacher}"])
    assert result.exit_code == 2 and "error:" in result.output, result.output
    trials += 2
    assert not marker.exists(), "a pickle was executed"
    record(SUITE, test="pickle bombs", trials=trials, faults=trials, lost=0, duplicated=0)
