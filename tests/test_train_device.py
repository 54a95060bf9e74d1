"""Device plumbing of training: names, the CUDA-less error, precision, what run.json
records, ``ser train --device cpu --workers 2`` with an exact resume, and a CUDA run where
a GPU exists."""

from __future__ import annotations

import json

import pytest
import torch
from lakes import add_teacher_labels, make_audio_lake
from typer.testing import CliRunner

from ser_pipeline.runs import load_checkpoint, read_run_meta
from ser_pipeline.train import TrainInputError, train_one, train_students
from ser_pipeline.train.device import Precision, resolve_device

torch.set_num_threads(1)
FAST = {"crop_s": 0.5, "batch_size": 8, "num_threads": 1}
NO_CUDA = not torch.cuda.is_available()
NO_CUDA_REASON = (f"no CUDA GPU visible to torch {torch.__version__} on this machine "
                  f"(CUDA build: {torch.version.cuda or 'no'}); the CUDA path runs only there")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    url = str(tmp_path_factory.mktemp("train-device") / "lake")
    lake, records = make_audio_lake(url, n=24, seconds=(0.6, 1.2), speakers=6)
    add_teacher_labels(lake, records)
    return lake


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device("auto").type == ("cpu" if NO_CUDA else "cuda")
    for bad in ("gpu", "cuda:x", "cuda0", "tpu"):
        with pytest.raises(TrainInputError, match="use auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    precision = Precision.for_device(torch.device("cpu"))
    assert precision.dtype == "fp32" and precision.scaler is None and precision.state() is None


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA; the CUDA-less error is moot")
def test_cuda_without_cuda_is_a_clear_error(toy):
    with pytest.raises(TrainInputError, match=r"--device cuda.*use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(TrainInputError, match="cuda:1"):
        resolve_device("cuda:1")
    before = toy.storage.list("runs") if toy.storage.exists("runs") else []
    with pytest.raises(TrainInputError):
        train_students(toy, students=["wav2small"], teacher_id="toy-teacher", device="cuda",
                       max_steps=2, **FAST)
    after = toy.storage.list("runs") if toy.storage.exists("runs") else []
    assert after == before  # checked before any run folder is written

    from ser_pipeline.cli import app

    result = CliRunner().invoke(app, ["train", "--student", "wav2small", "--teacher-id",
                                      "toy-teacher", "--lake", toy.url, "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "use --device cpu" in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) <= 2, result.output  # one message (rich may wrap it once)


def test_cli_trains_with_workers_and_resumes_exactly(toy):
    from ser_pipeline.cli import app

    hp = {**FAST, "max_steps": 12, "eval_every": 6, "patience": 100}
    straight = train_one(toy, student="wav2small", teacher_id="toy-teacher", seed=1,
                         hyperparams=hp)
    paused = train_one(toy, student="wav2small", teacher_id="toy-teacher", seed=1,
                       hyperparams=hp, stop_at_step=6)
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--resume", paused["run_id"], "--device", "cpu",
                                 "--workers", "2", "--lake", toy.url, "--engine", "local",
                                 "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    assert run["status"] == "completed" and run["steps"] == 12 and run["workers"] == 2
    a = load_checkpoint(toy, straight["last_checkpoint"])
    b = load_checkpoint(toy, run["last_checkpoint"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    info = read_run_meta(toy, run["run_id"])
    assert info.runtime.workers == 2 and info.runtime.device == "cpu"
    assert isinstance(info.data_wait_fraction, float)

    fresh = runner.invoke(app, ["train", "--student", "wav2small", "--teacher-id",
                                "toy-teacher", "--max-steps", "4", "--crop-s", "0.5",
                                "--batch-size", "8", "--device", "cpu", "--workers", "2",
                                "--lake", toy.url, "--engine", "local", "--json"])
    assert fresh.exit_code == 0, fresh.output
    assert json.loads(fresh.stdout)["runs"][0]["status"] == "completed"


@pytest.mark.skipif(NO_CUDA, reason=NO_CUDA_REASON)
def test_cuda_run_uses_mixed_precision_and_resumes_exactly(toy):
    hp = {**FAST, "max_steps": 12, "eval_every": 6, "patience": 100}
    straight = train_one(toy, student="wav2small", teacher_id="toy-teacher", seed=1,
                         hyperparams=hp, device="cuda", workers=2)
    info = read_run_meta(toy, straight["run_id"])
    assert info.runtime.device.startswith("cuda")
    assert info.runtime.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert straight["status"] == "completed" and straight["best_dev_ccc"] is not None
    paused = train_one(toy, student="wav2small", teacher_id="toy-teacher", seed=1,
                       hyperparams=hp, device="cuda", stop_at_step=6)
    state = json.loads(toy.storage.read_bytes(read_run_meta(toy, paused["run_id"])
                                              .resume_state))
    assert "cuda_rng" in load_checkpoint(toy, state["optimizer"])
    resumed = train_one(toy, resume=paused["run_id"], device="cuda")
    a = load_checkpoint(toy, straight["last_checkpoint"])
    b = load_checkpoint(toy, resumed["last_checkpoint"])
    assert all(torch.equal(a[k], b[k]) for k in a), "CUDA resume is not exact"
