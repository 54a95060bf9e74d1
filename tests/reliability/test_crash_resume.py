"""Crash and resume: SIGKILL the CLI at seeded random moments, then run it again.

Each job is killed several times in a row (each kill point is: start the command, wait
until it has committed a seeded number of new parts, or a seeded time for the early
points, wait a seeded fraction of a second more, SIGKILL), then run to completion. After
every kill the lake must hold no duplicate; after the last run nothing may be missing.
The kill schedule comes from ``SER_RELIABILITY_SEED`` (default 0), so a failure is
reproducible by seed, though the exact instruction a kill lands on depends on timing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.compute as pc
import pytest
from lakes import add_teacher_labels, make_audio_lake

from ser_pipeline.lake import Lake
from ser_pipeline.runs import load_checkpoint, load_run_model, read_run_meta
from ser_pipeline.teacher import init_teacher

from .conftest import SER, cli_env, write_wavs
from .report import record

SUITE = "crash and resume"
SEED = int(os.environ.get("SER_RELIABILITY_SEED", "0"))
pytestmark = pytest.mark.slow


def kill_points(count: int, *, seed: int, max_parts: int = 3,
                early: tuple[float, float] = (1.0, 5.0)) -> list[tuple[int, float]]:
    """``(new parts to wait for, extra delay s)``; 0 parts means "a delay after start",
    which lands in start-up, model loading or the first shard."""
    rng = random.Random(seed)
    points = []
    for index in range(count):
        if index % 4 == 0:
            points.append((0, round(rng.uniform(*early), 3)))
        else:
            points.append((rng.randint(1, max_parts), round(rng.uniform(0.0, 0.4), 3)))
    return points


def run_with_kills(args: list[str], env: dict[str, str], *, progress: Callable[[], int],
                   points: list[tuple[int, float]], check: Callable[[], None],
                   log: Path) -> dict:
    """Run ``args`` once per kill point, SIGKILL it there, ``check()`` after each kill,
    then run it to completion. Returns counts and the final run's stdout."""
    killed = finished_early = 0
    for number, (parts, delay) in enumerate(points):
        before = progress()
        with open(log, "ab") as err:
            process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + 120
            if parts == 0:
                time.sleep(delay)
            else:
                while (process.poll() is None and progress() < before + parts
                       and time.monotonic() < deadline):
                    time.sleep(0.02)
                time.sleep(delay)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                killed += 1
            else:
                assert process.returncode == 0, f"kill point {number}: exit {process.returncode}"
                finished_early += 1
        check()
    final = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    check()
    return {"killed": killed, "finished_early": finished_early, "stdout": final.stdout}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return init_teacher(tmp_path_factory.mktemp("teacher") / "tiny", arch="wav2vec2",
                        size="tiny")


def _label_ids(lake: Lake, teacher_id: str | None = None) -> list[str]:
    table = lake.read("teacher_labels", columns=["audio_id", "teacher_id"])
    if teacher_id is not None:
        table = table.filter(pc.equal(table.column("teacher_id"), teacher_id))
    return table.column("audio_id").to_pylist()


def test_label_survives_repeated_sigkill(tmp_path, teacher):
    # Enough work that every kill point lands before the job ends, even on an idle
    # machine (240 clips let 3 of 12 runs finish early there).
    lake, records = make_audio_lake(str(tmp_path / "lake"), n=600, seconds=(0.3, 0.8),
                                    human_labels=False, seed=11)
    clips = {r["audio_id"] for r in records}
    env = cli_env()
    args = [*SER, "label", "--teacher", f"hf:{teacher}", "--lake", lake.url, "--engine",
            "local", "--shard-size", "3", "--threads", "1", "--max-workers", "2", "--json"]
    points = kill_points(14, seed=SEED, max_parts=2, early=(0.5, 3.5))
    duplicates_seen = []

    def check() -> None:
        ids = _label_ids(lake)
        duplicates_seen.append(len(ids) - len(set(ids)))
        assert len(ids) == len(set(ids)), "duplicate teacher label rows after a kill"
        assert set(ids) <= clips

    result = run_with_kills(args, env, progress=lambda: len(lake.parts("teacher_labels")),
                            points=points, check=check, log=tmp_path / "label.log")
    ids = _label_ids(lake)
    assert len(ids) == len(set(ids)) == len(clips) and set(ids) == clips
    summary = json.loads(result["stdout"])
    assert summary["skipped_already_labeled"] + summary["clips_labeled"] == len(clips)
    assert result["killed"] >= 10, result  # at least 10 kills land while the job runs
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout)["clips_labeled"] == 0 and len(_label_ids(lake)) == len(clips)
    record(SUITE, test="ser label", trials=len(points) + 2, faults=result["killed"],
           lost=len(clips - set(ids)), duplicated=max(duplicates_seen), seed=SEED,
           kill_points=points)


def test_ingest_survives_repeated_sigkill(tmp_path):
    folder = tmp_path / "wavs"
    write_wavs(folder, 400, seed=5, seconds=(0.2, 0.5))
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    lake = Lake.open(str(tmp_path / "lake"))
    args = [*SER, "ingest", str(folder), "--corpus", "crash", "--lake", lake.url, "--engine",
            "local", "--shard-size", "2", "--max-workers", "1", "--json"]
    points = kill_points(10, seed=SEED + 1, max_parts=4, early=(1.5, 3.0))
    duplicates_seen = []

    def check() -> None:
        table = lake.read("audio", columns=["audio_id", "source_path"])
        paths = table.column("source_path").to_pylist()
        ids = table.column("audio_id").to_pylist()
        duplicates_seen.append(len(ids) - len(set(ids)))
        assert len(paths) == len(set(paths)) and len(ids) == len(set(ids))
        quarantine = lake.read("quarantine", columns=["source_path"]).column(
            "source_path").to_pylist()
        assert quarantine in ([], ["broken.wav"])

    result = run_with_kills(args, env=cli_env(), progress=lambda: len(lake.parts("audio")),
                            points=points, check=check, log=tmp_path / "ingest.log")
    paths = set(lake.read("audio", columns=["source_path"]).column("source_path").to_pylist())
    expected = {f"clip{i:04d}.wav" for i in range(400)}
    assert paths == expected and lake.count("audio") == 400
    assert lake.count("quarantine") == 1
    assert result["killed"] >= 5, result
    record(SUITE, test="ser ingest", trials=len(points) + 1, faults=result["killed"],
           lost=len(expected - paths), duplicated=max(duplicates_seen), seed=SEED,
           kill_points=points)


def test_train_resume_continues_from_last_checkpoint(tmp_path):
    lake, records = make_audio_lake(str(tmp_path / "lake"), n=40, seconds=(0.5, 1.0), seed=3)
    add_teacher_labels(lake, records, teacher_id="toy-teacher")
    env = cli_env()
    base = [*SER, "train", "--lake", lake.url, "--engine", "local", "--json"]
    start = [*base, "--student", "wav2small", "--teacher-id", "toy-teacher", "--max-steps",
             "60", "--eval-every", "4", "--batch-size", "8", "--crop-s", "0.5",
             "--patience", "100"]  # no early stop: the run must reach its last step
    rng = random.Random(SEED + 2)
    log = tmp_path / "train.log"

    def run_ids() -> list[str]:
        return lake.storage.list_dirs("runs")

    def steps(run_id: str) -> int:
        try:
            return int(read_run_meta(lake, run_id).get("steps") or 0)
        except (ValueError, FileNotFoundError, json.JSONDecodeError):
            return 0

    # first: start a run and kill it once it has saved a state past step 0
    with open(log, "ab") as err:
        process = subprocess.Popen(start, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 180
        while process.poll() is None and time.monotonic() < deadline and not (
                run_ids() and steps(run_ids()[0]) >= 4):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        assert process.poll() is None, "training finished before the first kill point"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    (run_id,) = run_ids()
    kills, history = 1, [steps(run_id)]
    targets = sorted(rng.sample(range(12, 52, 4), 3))
    for target in targets:  # resume, and kill again past a seeded later step
        before = steps(run_id)
        with open(log, "ab") as err:
            process = subprocess.Popen([*base, "--resume", run_id], env=env,
                                       stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + 180
            while process.poll() is None and steps(run_id) < target and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.3))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                kills += 1
        after = steps(run_id)
        assert after >= before, "a resumed run went back in steps"
        history.append(after)
        meta = read_run_meta(lake, run_id)
        state = json.loads(lake.storage.read_bytes(meta["resume_state"]))
        assert state["step"] == meta["steps"]  # the state run.json names exists and agrees
        load_checkpoint(lake, meta["last_checkpoint"])
    final = subprocess.run([*base, "--resume", run_id], env=env, capture_output=True,
                           text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    run = json.loads(final.stdout)["runs"][0]
    meta = read_run_meta(lake, run_id)
    assert run["run_id"] == run_id and run["status"] == "completed" and run["steps"] == 60
    evaluated = [entry["step"] for entry in meta["history"]]
    assert evaluated == sorted(set(evaluated)), f"steps repeated or went back: {evaluated}"
    assert evaluated[0] == 0 and evaluated[-1] == 60 and evaluated.count(0) == 1
    assert len(meta["resumed_at"]) == len(targets) + 1
    model, _ = load_run_model(lake, run_id, which="last")
    assert meta["last_checkpoint"].endswith("ckpt-00000060.safetensors")
    assert lake.storage.exists(meta["best_checkpoint"])
    record(SUITE, test="ser train --resume", trials=len(targets) + 2, faults=kills, lost=0,
           duplicated=len(evaluated) - len(set(evaluated)), seed=SEED,
           steps_at_kills=history)


class _Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch it)."""


def test_train_crash_at_every_checkpoint_write_resumes(tmp_path, monkeypatch):
    """Deterministic crash points: die at each write/remove of the run folder while the
    second checkpoint replaces the first, then ``resume`` must finish the run."""
    from ser_pipeline.storage import Storage
    from ser_pipeline.train import Hyperparams, train_one

    lake, records = make_audio_lake(str(tmp_path / "lake"), n=24, seconds=(0.5, 0.8), seed=9)
    add_teacher_labels(lake, records, teacher_id="toy-teacher")
    hp = Hyperparams(max_steps=8, eval_every=4, batch_size=8, crop_s=0.5)
    calls: list[str] = []
    crash_at: list[int | None] = [None]
    original_write, original_remove = Storage.write_bytes, Storage.remove

    def counted(kind, original):
        def wrapper(self, relative, *args, **kwargs):
            if relative.startswith("runs/"):
                calls.append(f"{kind} {relative.rsplit('/', 1)[-1]}")
                if crash_at[0] is not None and len(calls) == crash_at[0]:
                    raise _Crash(calls[-1])
            return original(self, relative, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(Storage, "write_bytes", counted("write", original_write))
    monkeypatch.setattr(Storage, "remove", counted("remove", original_remove))
    train_one(lake, student="wav2small", teacher_id="toy-teacher", hyperparams=hp,
              run_id="probe")
    second = [i for i, c in enumerate(calls, 1) if c.startswith("write ckpt-00000004")][0]
    third = [i for i, c in enumerate(calls, 1) if c.startswith("write ckpt-00000008")][0]
    points = list(range(second, third))  # every mutation of the step-4 checkpoint
    for point in points:
        calls.clear()
        crash_at[0] = point
        run_id = f"crash-{point}"
        with pytest.raises(_Crash):
            train_one(lake, student="wav2small", teacher_id="toy-teacher", hyperparams=hp,
                      run_id=run_id)
        crash_at[0] = None
        resumed = train_one(lake, resume=run_id)
        assert resumed["status"] == "completed" and resumed["steps"] == 8, (point, calls)
        meta = read_run_meta(lake, run_id)
        assert lake.storage.exists(meta["last_checkpoint"])
        assert lake.storage.exists(meta["best_checkpoint"])
    # a resumed run that dies again before its next checkpoint (after it rewrote run.json)
    train_one(lake, student="wav2small", teacher_id="toy-teacher", hyperparams=hp,
              run_id="twice", stop_at_step=4)
    for point in (1, 2, 3):
        calls.clear()
        crash_at[0] = point
        with pytest.raises(_Crash):
            train_one(lake, resume="twice")
        points.append(point)
    crash_at[0] = None
    resumed = train_one(lake, resume="twice")
    assert resumed["status"] == "completed" and resumed["steps"] == 8
    steps = [entry["step"] for entry in read_run_meta(lake, "twice")["history"]]
    assert steps == [0, 4, 8], steps
    record(SUITE, test="train checkpoint crash points", trials=len(points),
           faults=len(points), lost=0, duplicated=0)
