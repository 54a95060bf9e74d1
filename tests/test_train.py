"""Distillation training: learning, determinism, exact resume, checkpoints, bad input."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from lakes import add_teacher_labels, make_audio_lake
from typer.testing import CliRunner

from ser_pipeline.lake import Lake
from ser_pipeline.runs import (
    RunError,
    load_checkpoint,
    load_run_model,
    read_run_meta,
    run_path,
    write_run_meta,
)
from ser_pipeline.schemas import LABELS
from ser_pipeline.train import (
    ClipSource,
    TrainInputError,
    ccc_report,
    ccc_torch,
    predict_signals,
    prepare_data,
    train_one,
    train_students,
)

torch.set_num_threads(1)
FAST = {"crop_s": 0.5, "batch_size": 8, "num_threads": 1}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    url = str(tmp_path_factory.mktemp("train") / "lake")
    lake, records = make_audio_lake(url, n=24, seconds=(0.6, 1.2), speakers=6)
    add_teacher_labels(lake, records)
    return lake, records


def _weights(lake, path):
    return load_checkpoint(lake, path)


def test_ccc_torch_matches_audmetric():
    rng = np.random.default_rng(0)
    truth = rng.random((50, 3))
    prediction = truth * 0.7 + 0.2 * rng.random((50, 3)) + 0.1
    expected = ccc_report(truth, prediction)
    got = ccc_torch(torch.tensor(prediction), torch.tensor(truth)).numpy()
    np.testing.assert_allclose(got, [expected[k] for k in LABELS], rtol=1e-6)


def test_short_training_learns_the_teacher(toy):
    lake, _ = toy
    summary = train_students(lake, students=["wav2small"], teacher_id="toy-teacher",
                             max_steps=200, eval_every=50, patience=10, **FAST)
    run = summary["runs"][0]
    assert run["status"] == "completed" and run["steps"] == 200
    info = read_run_meta(lake, run["run_id"])
    losses = [h.train_loss for h in info.history if h.train_loss is not None]
    assert losses[-1] < 0.5 * losses[0]
    assert run["best_dev_ccc"]["mean"] > run["initial_dev_ccc"]["mean"] + 0.3
    # the record and run.json agree, and best/initial are the history's evaluations
    assert (info.best_dev_ccc, info.initial_dev_ccc, info.best_step) == (
        run["best_dev_ccc"], run["initial_dev_ccc"], run["best_step"])
    assert info.evaluation_at(run["best_step"]).dev_ccc == run["best_dev_ccc"]
    assert [h.step for h in info.history] == [0, 50, 100, 150, 200]
    for name in ("teacher_sha256", "git_sha", "best_checkpoint", "last_checkpoint",
                 "split_name", "created_at", "finished_at", "runtime"):
        assert getattr(info, name) is not None, name
    assert (info.student, info.student_options, info.seed, info.corpora) == (
        "wav2small", {}, 0, ["toy"])
    assert info.teacher_id == "toy-teacher" and info.params == 10_897
    assert info.status == "completed" and info.steps == 200
    assert info.lake_snapshot["audio"] == lake.parts("audio")
    # the learning rate is the student family's when none is given
    assert info.hyperparams["lr"] == 3e-3
    assert summary["train_clips"] + summary["dev_clips"] == 24
    # The best checkpoint reproduces the recorded dev CCC.
    model, _ = load_run_model(lake, run["run_id"])
    data = prepare_data(lake, teacher_id="toy-teacher", crop_s=0.5)
    from ser_pipeline.audio import decode_flac

    audio = {r["audio_id"]: decode_flac(r["audio"]["bytes"])
             for r in lake.audio_for(data.dev_ids).to_pylist()}
    prediction = predict_signals(model, [audio[i] for i in data.dev_ids])
    truth = np.array([data.targets[i] for i in data.dev_ids])
    assert ccc_report(truth, prediction)["mean"] == pytest.approx(run["best_dev_ccc"]["mean"],
                                                                  abs=1e-6)


def test_same_seed_same_result_and_resume_is_exact(toy):
    lake, _ = toy
    hp = {**FAST, "max_steps": 40, "eval_every": 10, "patience": 100}
    first = train_one(lake, student="wav2small", teacher_id="toy-teacher", seed=3,
                      hyperparams=hp)
    second = train_one(lake, student="wav2small", teacher_id="toy-teacher", seed=3,
                       hyperparams=hp)
    assert first["best_dev_ccc"] == second["best_dev_ccc"]
    assert first["last_dev_ccc"] == second["last_dev_ccc"]
    a, b = _weights(lake, first["last_checkpoint"]), _weights(lake, second["last_checkpoint"])
    assert all(torch.equal(a[k], b[k]) for k in a)

    paused = train_one(lake, student="wav2small", teacher_id="toy-teacher", seed=3,
                       hyperparams=hp, stop_at_step=20)
    assert paused["status"] == "interrupted" and paused["steps"] == 20
    resumed = train_one(lake, resume=paused["run_id"])
    assert resumed["run_id"] == paused["run_id"]
    assert resumed["status"] == "completed" and resumed["steps"] == 40
    c = _weights(lake, resumed["last_checkpoint"])
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert resumed["best_dev_ccc"] == first["best_dev_ccc"]
    assert resumed["last_dev_ccc"] == first["last_dev_ccc"]

    other = train_one(lake, student="wav2small", teacher_id="toy-teacher", seed=4,
                      hyperparams=hp)
    d = _weights(lake, other["last_checkpoint"])
    assert not all(torch.equal(a[k], d[k]) for k in a)


def test_streaming_source_matches_cache_and_bounds_memory(tmp_path):
    url = str(tmp_path / "lake")
    lake, first = make_audio_lake(url, n=12, seconds=(0.3, 0.5), seed=0)
    _, second = make_audio_lake(url, n=12, seconds=(0.3, 0.5), seed=1)  # a second part
    ids = [r["audio_id"] for r in first + second]
    parts = lake.parts("audio")
    assert len(parts) == 2
    cached = ClipSource(lake, parts, ids, cache=True)
    streamed = ClipSource(lake, parts, ids, cache=False, shuffle_clips=4)
    assert streamed.loaded == {} and len(streamed.blocks) == 2
    order = streamed.epoch_order(seed=0, epoch=0)
    assert sorted(order) == sorted(ids)
    assert order == streamed.epoch_order(seed=0, epoch=0)
    assert order != streamed.epoch_order(seed=0, epoch=1)
    for audio_id in order:
        np.testing.assert_array_equal(streamed.get(audio_id), cached.get(audio_id))
        assert sum(len(v) for v in streamed.loaded.values()) <= 24
    # Clips of one row-group window come together: the first half of the order is one part.
    halves = {streamed.block_of[i] for i in order[:12]}
    assert len(halves) == 1
    run = train_one(_labelled(lake, first + second), student="wav2small",
                    teacher_id="toy-teacher",
                    hyperparams={**FAST, "crop_s": 0.3, "max_steps": 6, "eval_every": 3,
                                 "cache_limit_s": 0, "shuffle_clips": 4})
    info = read_run_meta(lake, run["run_id"])
    assert run["status"] == "completed" and info.hyperparams["cache_audio"] is False


def _labelled(lake, records):
    add_teacher_labels(lake, records)
    return lake


def test_nan_loss_stops_and_keeps_last_good_checkpoint(toy):
    lake, _ = toy
    run = train_one(lake, student="wav2small", teacher_id="toy-teacher",
                    hyperparams={**FAST, "max_steps": 30, "lr": 1e25, "warmup_steps": 0,
                                 "eval_every": 100})
    assert run["status"] == "stopped_nan"
    assert run["nan_step"] is not None and f"step {run['nan_step']}" in run["error"]
    info = read_run_meta(lake, run["run_id"])
    assert info.status == "stopped_nan" and info.last_checkpoint
    assert info.nan_step == run["nan_step"] and info.error == run["error"]
    weights = load_checkpoint(lake, info.last_checkpoint)
    assert all(torch.isfinite(v.float()).all() for v in weights.values())


def test_checkpoints_load_only_through_safetensors(toy):
    lake, _ = toy
    run = train_one(lake, student="wav2small", teacher_id="toy-teacher",
                    hyperparams={**FAST, "max_steps": 2, "eval_every": 2})
    info = read_run_meta(lake, run["run_id"])
    planted = pickle.dumps({"head.weight": torch.zeros(3, 338)})
    for name in ("ckpt-evil.pt", "ckpt-evil.safetensors"):
        path = run_path(run["run_id"], name)
        lake.storage.write_bytes(path, planted)
        info.best_checkpoint = path
        write_run_meta(lake, run["run_id"], info)
        with pytest.raises(RunError, match="only .safetensors|not a valid safetensors"):
            load_run_model(lake, run["run_id"])
    info.last_checkpoint = run_path(run["run_id"], "ckpt-evil.safetensors")
    write_run_meta(lake, run["run_id"], info)
    with pytest.raises(RunError, match="not a valid safetensors"):
        train_one(lake, resume=run["run_id"])


def test_bad_input_fails_before_training(toy, tmp_path):
    lake, _ = toy
    runs_before = lake.storage.list_dirs("runs")
    with pytest.raises(ValueError, match="unknown student 'resnet'.*wav2small"):
        train_students(lake, students=["resnet"], teacher_id="toy-teacher")
    with pytest.raises(TrainInputError, match="'nobody' has no labels.*toy-teacher"):
        train_students(lake, students=["wav2small"], teacher_id="nobody")
    with pytest.raises(TrainInputError, match="crop length 9 s is longer than every"):
        train_students(lake, students=["wav2small"], teacher_id="toy-teacher", crop_s=9)
    assert lake.storage.list_dirs("runs") == runs_before
    small, records = make_audio_lake(str(tmp_path / "small"), n=3, speakers=3)
    add_teacher_labels(small, records)
    with pytest.raises(TrainInputError, match="too few clips for the split"):
        train_students(small, students=["wav2small"], teacher_id="toy-teacher")
    assert small.storage.list_dirs("runs") == []


def test_cli_trains_and_reports_run_ids(toy):
    from ser_pipeline.cli import app

    lake, _ = toy
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--student", "wav2small", "--teacher-id",
                                 "toy-teacher", "--max-steps", "4", "--crop-s", "0.5",
                                 "--batch-size", "8", "--lake", lake.url, "--engine", "local",
                                 "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    run_id = summary["runs"][0]["run_id"]
    assert read_run_meta(Lake.open(lake.url), run_id).status == "completed"
    bad = runner.invoke(app, ["train", "--student", "nope", "--teacher-id", "toy-teacher",
                              "--lake", lake.url, "--engine", "local"])
    assert bad.exit_code == 2 and "unknown student 'nope'" in bad.output


@pytest.mark.slow
def test_flow_trains_students_as_parallel_tasks(toy, prefect_harness):
    from prefect.client.orchestration import get_client

    from flows.train import train_flow

    lake, _ = toy
    started = datetime.now(timezone.utc)
    summary = train_flow(students=["wav2small", "wav2small-72k"], teacher_id="toy-teacher",
                         lake=lake.url, max_steps=3, crop_s=0.5, batch_size=8)
    assert [r["student"] for r in summary["runs"]] == ["wav2small", "wav2small-72k"]
    assert all(r["status"] == "completed" for r in summary["runs"])
    assert {read_run_meta(lake, r["run_id"]).params for r in summary["runs"]} == {
        10_897, 70_621}

    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # the run logs are sent in batches

    async def artifacts_and_logs():
        async with get_client() as client:
            return await client.read_latest_artifacts(), await client.read_logs()

    import asyncio

    artifacts, logs = asyncio.run(artifacts_and_logs())
    assert {"train-summary", "train-runs"} <= {a.key for a in artifacts}
    # every evaluation is in its own task run's log: two students in parallel threads
    by_run: dict = {}
    for entry in logs:  # the harness is shared: only this flow's runs count
        if (entry.timestamp >= started and " step " in entry.message
                and "dev CCC A " in entry.message):
            by_run.setdefault(entry.task_run_id, []).append(entry.message.split(" step ")[0])
    assert sorted(by_run.values()) == [["wav2small"] * 2, ["wav2small-72k"] * 2], by_run
