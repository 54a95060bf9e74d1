"""The training recipe: progress logs, and the ceiling test (a student learning its own kind)."""

from __future__ import annotations

import logging

import pytest
import torch
from lakes import add_teacher_labels, make_audio_lake

from ser_pipeline.schemas import LABELS
from ser_pipeline.train import teacher_ids, train_one
from ser_pipeline.train.ceiling import CEILING_TARGET, ceiling_test

torch.set_num_threads(1)


def test_every_evaluation_logs_step_loss_and_dev_ccc(tmp_path, caplog):
    lake, records = make_audio_lake(str(tmp_path / "lake"), n=16, seconds=(0.6, 1.0),
                                    speakers=4)
    add_teacher_labels(lake, records)
    with caplog.at_level(logging.INFO, logger="ser_pipeline.train"):
        run = train_one(lake, student="wav2small", teacher_id="toy-teacher",
                        hyperparams={"crop_s": 0.5, "batch_size": 4, "max_steps": 6,
                                     "eval_every": 3})
    lines = [r.getMessage() for r in caplog.records if r.name == "ser_pipeline.train"]
    assert [line.split(" train loss")[0] for line in lines] == [
        "wav2small step 0/6", "wav2small step 3/6", "wav2small step 6/6"]
    last = run["last_dev_ccc"]
    assert lines[-1].endswith(f"dev CCC A {last['arousal']:.3f} D {last['dominance']:.3f} "
                              f"V {last['valence']:.3f} (mean {last['mean']:.3f})")
    assert "train loss -" in lines[0] and "train loss -" not in lines[1]


def test_weight_average_is_what_is_evaluated_and_resumes_exactly(tmp_path):
    from ser_pipeline.runs import load_checkpoint

    lake, records = make_audio_lake(str(tmp_path / "lake"), n=16, seconds=(0.6, 1.0),
                                    speakers=4)
    add_teacher_labels(lake, records)
    hp = {"crop_s": 0.5, "batch_size": 4, "max_steps": 12, "eval_every": 4, "patience": 100}
    kwargs = {"student": "wav2small", "teacher_id": "toy-teacher", "seed": 2}
    plain = train_one(lake, hyperparams=hp, **kwargs)
    averaged = train_one(lake, hyperparams={**hp, "ema_decay": 0.9}, **kwargs)
    a = load_checkpoint(lake, plain["last_checkpoint"])
    b = load_checkpoint(lake, averaged["last_checkpoint"])
    # same batches and updates; the checkpoint holds the average, not the live weights
    assert not torch.equal(a["head.weight"], b["head.weight"])
    assert averaged["last_dev_ccc"] != plain["last_dev_ccc"]
    paused = train_one(lake, hyperparams={**hp, "ema_decay": 0.9}, stop_at_step=6, **kwargs)
    resumed = train_one(lake, resume=paused["run_id"])
    c = load_checkpoint(lake, resumed["last_checkpoint"])
    assert all(torch.equal(b[k], c[k]) for k in b)
    assert resumed["last_dev_ccc"] == averaged["last_dev_ccc"]


@pytest.mark.slow
def test_ceiling_a_wav2small_learns_a_trained_wav2small_teacher(tmp_path):
    """The loop's own ceiling: a teacher the student can represent exactly.

    A Wav2Small trained on the synthetic labels is exported to ONNX and relabels the lake as
    an ``onnx:`` teacher (``ceiling_test``); a fresh Wav2Small from another seed must then
    reach the ceiling target on every dimension of the dev clips (unseen speakers).
    """
    lake, records = make_audio_lake(str(tmp_path / "lake"), n=60, seconds=(1.0, 1.6),
                                    speakers=10)
    add_teacher_labels(lake, records)
    # 60 clips are few: noise augmentation regularises here (without it the student's
    # valence stopped at 0.91; on the demo pool's 785 clips it is better off).
    hp = {"crop_s": 1.0, "max_steps": 200, "eval_every": 50, "patience": 100,
          "noise_prob": 0.5}
    teacher = train_one(lake, student="wav2small", teacher_id="toy-teacher", hyperparams=hp)
    result = ceiling_test(lake, teacher_run_id=teacher["run_id"], workdir=tmp_path,
                          hyperparams=hp, seed=1)
    assert result["teacher_id"].startswith("wav2small-ceiling-")
    assert result["teacher_id"] in teacher_ids(lake)
    best = result["best_dev_ccc"]
    assert result["passed"] == all(best[d] >= CEILING_TARGET for d in LABELS)
    assert result["passed"], best
