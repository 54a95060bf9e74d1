"""Concurrency: two labelers on one lake and teacher, two publishers of one model name,
each as separate processes started at the same moment."""

from __future__ import annotations

import json
import subprocess

import pytest
from lakes import add_teacher_labels, make_audio_lake
from onnx_runs import TEACHER, make_run

from ser_pipeline.storage import Storage
from ser_pipeline.teacher import init_teacher

from .conftest import SER, check_registry, cli_env, direct_settings
from .report import record

SUITE = "concurrency"
pytestmark = pytest.mark.slow


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out)


def test_two_labelers_write_no_duplicate(tmp_path):
    lake, records = make_audio_lake(str(tmp_path / "lake"), n=120, seconds=(0.3, 0.8),
                                    human_labels=False, seed=21)
    teacher = init_teacher(tmp_path / "teacher", arch="wav2vec2", size="tiny")
    env = cli_env()
    base = [*SER, "label", "--teacher", f"hf:{teacher}", "--lake", lake.url, "--engine",
            "local", "--threads", "1", "--max-workers", "1", "--json"]
    # different shard sizes: the two plans cut the clips differently, so deterministic
    # part keys alone could not stop a clip from landing twice; the commit lock does
    first, second = (_start([*base, "--shard-size", size], env) for size in ("5", "7"))
    summaries = [_finish(first), _finish(second)]
    ids = lake.read("teacher_labels", columns=["audio_id"]).column("audio_id").to_pylist()
    clips = {r["audio_id"] for r in records}
    assert len(ids) == len(set(ids)) == len(clips) and set(ids) == clips
    assert sum(s["clips_labeled"] for s in summaries) == len(clips)
    assert not lake.storage.list("teacher_labels/_locks")  # both released their lock
    record(SUITE, test="two ser label processes", trials=2, faults=1,
           lost=len(clips - set(ids)), duplicated=len(ids) - len(set(ids)),
           work_duplicated=sum(s["duplicates_dropped"] for s in summaries))


def test_two_publishers_of_one_name(s3_env, tmp_path):
    # its own run, with teacher labels on the gate's dev clips: the second version is then
    # compared with the first (the same model: no regression), as in production, instead
    # of being held back because the gate could not compare
    lake, run_id, records = make_run(str(tmp_path / "lake"))
    add_teacher_labels(lake, records, teacher_id=TEACHER, noise=0.02)
    s3 = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
          "AWS_DEFAULT_REGION": "us-east-1", "SER_S3_ENDPOINT_URL": s3_env["endpoint_url"]}
    # S3 (conditional PUTs, the harder case); tests/test_registry.py races threads on both
    targets = {"s3": f"s3://{s3_env['bucket']}/registry"}
    processes = []
    for kind, registry in targets.items():
        for index in range(2):
            env = cli_env(**s3, SER_DB=str(tmp_path / f"{kind}-{index}.duckdb"))
            processes.append((kind, _start([
                *SER, "publish", "--run", run_id, "--name", "race", "--lake",
                lake.url, "--registry", registry, "--engine", "local", "--json"],
                env)))
    results = [(kind, _finish(process)) for kind, process in processes]
    for kind, registry in targets.items():
        versions = sorted(r["version"] for k, r in results if k == kind)
        assert versions == [1, 2], (kind, versions)
        settings = direct_settings(s3_env["endpoint_url"])
        truth = check_registry(Storage(registry, settings=settings))["race"]
        assert truth["complete"] == [1, 2] and truth["incomplete"] == []
        assert truth["latest"] == 2
        gates = sorted((r["version"], r["latest"], r["gate"]) for k, r in results if k == kind)
        assert gates[1][1] and "not compared" not in gates[1][2], gates  # compared, not held
    record(SUITE, test="two ser publish processes (s3)", trials=2, faults=1, lost=0,
           duplicated=0)
