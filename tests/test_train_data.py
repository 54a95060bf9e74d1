"""The training data path: worker processes give the in-process batches, resume with
workers is exact, memory stays within the shuffle windows, and an s3:// lake streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lakes import add_teacher_labels, make_audio_lake

from ser_pipeline.runs import RunRuntime, load_checkpoint, read_run_meta
from ser_pipeline.train import ClipSource, Hyperparams, prepare_data, train_one
from ser_pipeline.train.loader import StepBatches, batch_stream

torch.set_num_threads(1)
# cache_limit_s=0 makes the train split stream from Parquet row groups, so the workers
# read and decode the lake themselves instead of inheriting the parent's cache.
STREAM = {"crop_s": 0.5, "batch_size": 4, "num_threads": 1, "cache_limit_s": 0.0,
          "shuffle_clips": 8}


def _two_part_lake(url: str):
    lake, records = make_audio_lake(url, n=14, seconds=(0.6, 1.0), speakers=7, seed=0)
    _, more = make_audio_lake(url, n=14, seconds=(0.6, 1.0), speakers=7, seed=1,
                              corpus="toy2")
    records = records + more
    add_teacher_labels(lake, records)
    return lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return _two_part_lake(str(tmp_path_factory.mktemp("train-data") / "lake"))


def _step_batches(lake, *, seed: int = 5) -> StepBatches:
    hp = Hyperparams(**STREAM, mixup=True)
    data = prepare_data(lake, teacher_id="toy-teacher", crop_s=hp.crop_s)
    source = ClipSource(lake, data.snapshot["audio"], data.train_ids, cache=False,
                        shuffle_clips=hp.shuffle_clips)
    assert len(source.blocks) >= 2  # two part files: the block shuffle has work to do
    steps = len(data.train_ids) // hp.batch_size
    return StepBatches(source, data.targets, hp=hp, seed=seed, batch_size=hp.batch_size,
                       steps_per_epoch=steps)


def _stream(batches, *, start, total, workers):
    return list(batch_stream(batches, start=start, total=total, workers=workers))


def test_two_workers_give_the_in_process_batches(lake):
    batches = _step_batches(lake)
    total = 3 * batches.steps_per_epoch + 1  # crosses epoch boundaries (new block order)
    inline = _stream(batches, start=0, total=total, workers=0)
    workers = _stream(_step_batches(lake), start=0, total=total, workers=2)
    assert len(inline) == len(workers) == total
    for step, ((x0, y0), (x2, y2)) in enumerate(zip(inline, workers, strict=True)):
        assert torch.equal(x0, x2) and torch.equal(y0, y2), step
    # A stream started mid-run (a resume) gives the same steps as the full one.
    tail = _stream(_step_batches(lake), start=5, total=total, workers=2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(inline[5:], tail, strict=True))
    # Different steps and epochs really differ (the comparison above is not vacuous).
    assert not torch.equal(inline[0][0], inline[batches.steps_per_epoch][0])
    other = _stream(_step_batches(lake, seed=6), start=0, total=2, workers=0)
    assert not torch.equal(other[0][0], inline[0][0])


def test_streaming_source_keeps_memory_within_two_windows(lake):
    batches = _step_batches(lake)
    source = batches.source
    peak = 0
    for step in range(2 * batches.steps_per_epoch):
        batches[step]
        peak = max(peak, sum(len(v) for v in source.loaded.values()))
    assert len(source.loaded) >= 1
    largest_block = max(len(members) for members in source.blocks.values())
    assert peak <= max(source.max_loaded_clips, largest_block)
    assert peak < len(source.block_of)  # never the whole split at once


def _weights(lake, path):
    return load_checkpoint(lake, path)


def test_training_with_workers_matches_and_resumes_exactly(lake):
    hp = {**STREAM, "max_steps": 16, "eval_every": 8, "patience": 100}
    inline = train_one(lake, student="wav2small", teacher_id="toy-teacher", seed=2,
                       hyperparams=hp, workers=0)
    paused = train_one(lake, student="wav2small", teacher_id="toy-teacher", seed=2,
                       hyperparams=hp, workers=2, stop_at_step=8)
    assert paused["status"] == "interrupted" and paused["workers"] == 2
    resumed = train_one(lake, resume=paused["run_id"], workers=2)
    assert resumed["status"] == "completed" and resumed["steps"] == 16
    a = _weights(lake, inline["last_checkpoint"])
    b = _weights(lake, resumed["last_checkpoint"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["last_dev_ccc"] == inline["last_dev_ccc"]
    info = read_run_meta(lake, resumed["run_id"])
    assert info.hyperparams["cache_audio"] is False
    assert info.runtime == RunRuntime(device="cpu", precision="fp32", workers=2, compile=False)
    assert 0.0 <= info.data_wait_fraction <= 1.0
    assert len(info.resumed_at) == 1 and info.status == "completed"


def test_s3_lake_through_the_workers(s3_env, tmp_path):
    lake = _two_part_lake(f"s3://{s3_env['bucket']}/lake")
    batches = _step_batches(lake)
    total = batches.steps_per_epoch + 2
    inline = _stream(batches, start=0, total=total, workers=0)
    workers = _stream(_step_batches(lake), start=0, total=total, workers=2)
    for (x0, y0), (x2, y2) in zip(inline, workers, strict=True):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
    assert np.isfinite(torch.stack([x for x, _ in inline]).numpy()).all()
    run = train_one(lake, student="wav2small", teacher_id="toy-teacher",
                    hyperparams={**STREAM, "max_steps": 4, "eval_every": 4}, workers=2)
    assert run["status"] == "completed" and run["steps"] == 4
    assert lake.storage.exists(run["last_checkpoint"])
