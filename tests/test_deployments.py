"""The deployments as an operator runs them: a real Prefect server, a process work pool,
``prefect deploy``, a triggered relabel run and a worker that picks it up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.dataset as ds
import pytest
import soundfile as sf
from lakes import make_audio_lake, tone

from conftest import free_port
from ser_pipeline.lake import Lake

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _prefect(*args: str, env: dict, timeout: float = 180, check: bool = True):
    result = subprocess.run([str(BIN / "prefect"), *args], cwd=REPO, env=env, text=True,
                            capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture()
def prefect_server(tmp_path):
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_UI_ENABLED": "false", "PWD": str(REPO)}
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "prefect server exited during start-up"
            time.sleep(0.5)
        else:
            raise AssertionError("prefect server did not become healthy within 120 s")
        yield env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def test_deploy_and_scheduled_relabel_end_to_end(prefect_server, tmp_path):
    env = prefect_server
    api = env["PREFECT_API_URL"]
    from ser_pipeline.label import label_lake
    from ser_pipeline.teacher import init_teacher

    # A lake whose older clips already carry the production teacher's labels...
    lake_url = str(tmp_path / "lake")
    lake, _ = make_audio_lake(lake_url, n=12, corpus="old")
    teacher = f"hf:{init_teacher(tmp_path / 'teacher', size='tiny', seed=3)}"
    first = label_lake(lake, teacher=teacher)
    assert first.clips_labeled == 12
    # ...and new, unlabeled audio arriving in a drop folder.
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for index in range(5):
        signal_ = tone(f0=120 + 40 * index, brightness=0.5, tremolo_hz=3, seconds=1.0,
                       seed=index)
        sf.write(incoming / f"new{index}.wav", signal_, 16000)

    _prefect("work-pool", "create", "ser-process", "--type", "process", env=env)
    deployed = _prefect("--no-prompt", "deploy", "--all", "--prefect-file",
                        "deployments/prefect.yaml", env=env, timeout=300)
    names = {d["name"] for d in httpx.post(f"{api}/deployments/filter", json={}).json()}
    assert names == {"ingest", "label", "train", "evaluate", "publish", "distill", "relabel"}, (
        deployed.stdout)

    relabel = httpx.get(f"{api}/deployments/name/relabel/relabel").json()
    assert relabel["global_concurrency_limit"]["limit"] == 1
    assert relabel["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert relabel["enforce_parameter_schema"] is True
    assert [s["schedule"]["cron"] for s in relabel["schedules"]] == ["0 2 * * *"]
    assert relabel["work_queue_name"] == "gpu"

    # The schema rejects a parameter of the wrong type before any worker sees it.
    rejected = _prefect("deployment", "run", "relabel/relabel", "--param",
                        "reference_weeks=\"many\"", env=env, check=False)
    assert rejected.returncode != 0
    assert "reference_weeks" in (rejected.stdout + rejected.stderr)

    _prefect("deployment", "run", "relabel/relabel", env=env)
    worker_env = {**env, "SER_LAKE": lake_url, "SER_TEACHER": teacher,
                  "SER_RELABEL_SOURCES": json.dumps([str(incoming)]),
                  "SER_RELABEL_CORPUS": "incoming", "SER_REGISTRY": str(tmp_path / "registry"),
                  "SER_MODEL_NAME": "not-published-yet"}
    worker = _prefect("worker", "start", "--pool", "ser-process", "--work-queue", "gpu",
                      "--run-once", env=worker_env, timeout=400)
    runs = httpx.post(f"{api}/flow_runs/filter", json={}).json()
    relabel_runs = [r for r in runs if r["deployment_id"] == relabel["id"]]
    # The server's scheduler has already queued the coming nightly runs from the cron.
    assert any(r["state_type"] == "SCHEDULED" and r["auto_scheduled"] for r in relabel_runs)
    triggered = [r for r in relabel_runs if not r["auto_scheduled"]]
    assert [r["state_type"] for r in triggered] == ["COMPLETED"], (
        worker.stdout[-3000:] + worker.stderr[-3000:])

    lake = Lake.open(lake_url)
    new_ids = lake.ids("audio", filter=ds.field("corpus") == "incoming")
    assert len(new_ids) == 5
    labeled = lake.read("teacher_labels", columns=["audio_id"]).column("audio_id").to_pylist()
    assert sorted(labeled) == sorted(set(labeled)), "duplicate teacher labels"
    assert new_ids <= set(labeled) and len(labeled) == 17
    drift = lake.read("drift")
    assert drift.num_rows == 3
    assert set(drift.column("new_n").to_pylist()) == {5}
    assert set(drift.column("ref_n").to_pylist()) == {12}
    assert np.isfinite(drift.column("ks").to_numpy()).all()
    exceeded = drift.column("exceeded").to_pylist()
    events = []
    for _ in range(40):  # events are persisted asynchronously by the server
        events = httpx.post(f"{api}/events/filter", json={
            "filter": {"event": {"name": ["ser.drift.exceeded"]}}}).json()["events"]
        if events or not any(exceeded):
            break
        time.sleep(0.5)
    assert bool(events) == any(exceeded)
    from ser_pipeline.db import build_db

    assert build_db(lake, out=tmp_path / "ser.duckdb")["rows"]["drift"] == 3
    artifacts = httpx.post(f"{api}/artifacts/filter", json={}).json()
    assert {"drift-report", "relabel"} <= {a["key"] for a in artifacts}


def test_prefect_cli_is_on_path():
    assert shutil.which("prefect", path=str(BIN)), "the venv must provide the prefect CLI"
