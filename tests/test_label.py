"""Labeling: anti-join selection, shards, quarantine, crash resume, Dask, the flow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import torch
from lakes import make_audio_lake
from typer.testing import CliRunner

from ser_pipeline.audio import encode_flac
from ser_pipeline.cli import app
from ser_pipeline.label import label_lake
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.schemas import SAMPLE_RATE
from ser_pipeline.teacher import init_teacher, load_teacher
from ser_pipeline.teacher.load import teacher_cache_info

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return f"hf:{init_teacher(tmp_path_factory.mktemp('t') / 'tiny', seed=5)}"


def labels_of(lake: Lake) -> dict[str, tuple]:
    table = lake.read("teacher_labels")
    rows = table.to_pylist()
    return {r["audio_id"]: (r["arousal"], r["dominance"], r["valence"]) for r in rows}


def assert_no_duplicates(lake: Lake) -> int:
    table = lake.read("teacher_labels", columns=["audio_id", "teacher_id"])
    pairs = list(zip(table.column("audio_id").to_pylist(),
                     table.column("teacher_id").to_pylist(), strict=True))
    assert len(pairs) == len(set(pairs)), "duplicate label rows"
    return len(pairs)


def add_clip(lake: Lake, data: bytes, name: str, *, seconds: float, corpus: str = "odd") -> str:
    import hashlib

    audio_id = hashlib.sha256(data).hexdigest()
    lake.write_part("audio", [{
        "audio_id": audio_id, "audio": {"bytes": data, "path": name}, "corpus": corpus,
        "source_path": name, "duration_s": seconds, "orig_sample_rate": SAMPLE_RATE,
        "orig_channels": 1, "orig_format": "FLAC/PCM_16", "speaker": None, "split": None,
        "is_silent": False, "ingested_at": utcnow()}], key=content_key("odd", audio_id))
    return audio_id


def test_labels_rows_incrementally_with_one_model_load(lake_url: str, tiny: str) -> None:
    lake, records = make_audio_lake(lake_url, n=12, corpus="a")
    make_audio_lake(lake_url, n=6, corpus="b", seed=1)
    loads = teacher_cache_info().misses
    first = label_lake(lake, teacher=tiny, corpora=["a"], shard_size=4, run_id="r1")
    assert teacher_cache_info().misses - loads <= 1  # 3 shards, one load per process
    assert first.clips_labeled == 12 and first.shards == 3
    assert first.is_random and "random" in first.teacher_id and first.warning is not None
    assert first.audio_seconds == pytest.approx(
        sum(r["signal"].size for r in records) / SAMPLE_RATE, abs=0.01)
    rows = lake.read("teacher_labels").to_pylist()
    teacher = load_teacher(tiny)
    assert {r["teacher_id"] for r in rows} == {teacher.teacher_id}
    assert {r["teacher_sha256"] for r in rows} == {teacher.sha256}
    assert {r["run_id"] for r in rows} == {"r1"} and {r["n_windows"] for r in rows} == {1}
    by_id = labels_of(lake)
    direct = teacher.predict([r["signal"] for r in records[:3]])
    got = np.array([by_id[r["audio_id"]] for r in records[:3]])
    np.testing.assert_allclose(got, direct, atol=2e-4)  # FLAC 16-bit round trip

    again = label_lake(lake, teacher=tiny, corpora=["a"], shard_size=4)
    assert again.clips_labeled == 0 and again.skipped_already_labeled == 12
    rest = label_lake(lake, teacher=tiny, shard_size=4)
    assert rest.clips_labeled == 6 and rest.skipped_already_labeled == 12
    assert assert_no_duplicates(lake) == 18


def test_bad_clips_are_quarantined_and_the_shard_continues(lake_url: str, tiny: str) -> None:
    lake, _ = make_audio_lake(lake_url, n=5)
    corrupt = add_clip(lake, b"fLaC-not-really-audio", "corrupt.flac", seconds=1.0)
    short = add_clip(lake, encode_flac(np.zeros(100, np.float32)), "short.flac",
                     seconds=100 / SAMPLE_RATE)
    rng = np.random.default_rng(0)
    long_id = add_clip(lake, encode_flac((0.1 * rng.standard_normal(SAMPLE_RATE * 25))
                                         .astype(np.float32)), "long.flac", seconds=25.0)
    summary = label_lake(lake, teacher=tiny, shard_size=100, window_s=10, overlap_s=2)
    assert summary.clips_labeled == 6 and summary.quarantined == 2
    quarantine = {r["audio_id"]: r for r in lake.read("quarantine").to_pylist()}
    assert set(quarantine) == {corrupt, short}
    assert quarantine[short]["reason"] == "too_short" and quarantine[short]["stage"] == "label"
    assert quarantine[corrupt]["reason"] == "decode_error"
    assert quarantine[corrupt]["source_path"] == "corrupt.flac"
    assert {r["teacher_id"] for r in quarantine.values()} == {summary.teacher_id}
    assert not any(r["message"].startswith("teacher ") for r in quarantine.values())
    windows = {r["audio_id"]: r["n_windows"] for r in lake.read("teacher_labels").to_pylist()}
    assert windows[long_id] == 3
    again = label_lake(lake, teacher=tiny, shard_size=100)
    assert again.skipped_quarantined == 2 and again.clips_labeled == 0
    assert lake.count("quarantine") == 2


def test_labels_an_s3_lake_with_the_commit_lock(s3_env: dict, tiny: str) -> None:
    url = f"s3://{s3_env['bucket']}/lake"
    lake, _ = make_audio_lake(url, n=5)
    first = label_lake(lake, teacher=tiny, shard_size=2)
    assert first.clips_labeled == 5 and first.shards == 3
    assert label_lake(lake, teacher=tiny, shard_size=2).clips_labeled == 0
    assert assert_no_duplicates(lake) == 5
    assert not lake.storage.list("teacher_labels/_locks")  # every lock was released


def test_concurrent_labelers_write_no_duplicates(lake_url: str, tiny: str) -> None:
    lake, _ = make_audio_lake(lake_url, n=16)
    results = []
    runs = [threading.Thread(target=lambda s=size: results.append(
        label_lake(Lake.open(lake_url), teacher=tiny, shard_size=s, max_workers=1)))
        for size in (3, 5)]  # different shard plans: overlapping work, distinct part keys
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert assert_no_duplicates(lake) == 16
    assert sum(r.clips_labeled for r in results) == 16


def test_old_quarantine_rows_still_skip_their_clips(lake_url: str) -> None:
    """Rows written before the teacher_id column name the teacher in the message only."""
    import pyarrow as pa

    from ser_pipeline.label import plan_shards
    from ser_pipeline.quarantine import QuarantineRow
    from ser_pipeline.schemas import QUARANTINE

    lake, records = make_audio_lake(lake_url, n=4)
    ids = [r["audio_id"] for r in records]
    old = pa.schema([f for f in QUARANTINE if f.name != "teacher_id"])
    lake.storage.write_parquet("quarantine/part-old.parquet", pa.Table.from_pylist([
        {"corpus": None, "source_path": "x", "audio_id": ids[0], "stage": "label",
         "reason": "decode_error", "message": "teacher t: not FLAC",
         "quarantined_at": utcnow()}], schema=old))
    lake.write_part("quarantine", [
        QuarantineRow(stage="label", reason="too_short", message="short", audio_id=ids[1],
                      teacher_id="t").to_dict(),
        QuarantineRow(stage="label", reason="too_short", message="short", audio_id=ids[2],
                      teacher_id="other").to_dict()], key="new")
    shards, counts = plan_shards(lake, teacher_id="t", shard_size=10)
    assert counts.skipped_quarantined == 2 and counts.clips_in_scope == 4
    assert {i for shard in shards for i in shard.ids} == {ids[2], ids[3]}


def test_a_loaded_teacher_labels_in_process_only(lake_url: str, tiny: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ser_pipeline.label import LabelOptions, Shard, label_shard
    from ser_pipeline.teacher import TeacherError

    lake, _ = make_audio_lake(lake_url, n=3)
    teacher = load_teacher(tiny)
    summary = label_lake(lake, teacher=teacher, shard_size=2)
    assert summary.clips_labeled == 3 and summary.teacher_id == teacher.teacher_id
    with ThreadPoolExecutor(1) as pool, pytest.raises(TeacherError, match="spec string"):
        label_lake(lake, teacher=teacher, executor=pool)
    options = LabelOptions(lake=lake_url, teacher=f"loaded:{teacher.teacher_id}")
    with pytest.raises(TeacherError, match="cannot load"):  # a worker handed no teacher
        label_shard(Shard(parts=(lake.parts("audio")[0],), ids=(), seconds=0.0), options)


def test_process_caches_are_bounded() -> None:
    from ser_pipeline.label.commit import INDEX_CACHE_SIZE, labeled_index
    from ser_pipeline.teacher.load import CACHE_SIZE

    labeled_index.cache_clear()
    first = [labeled_index(f"/lake{i}", "t") for i in range(INDEX_CACHE_SIZE)]
    assert labeled_index("/lake0", "t") is first[0]  # now the most recently used
    labeled_index("/one-more", "t")
    assert labeled_index.cache_info().currsize == INDEX_CACHE_SIZE
    assert labeled_index("/lake1", "t") is not first[1]  # the least recently used went
    assert labeled_index("/lake0", "t") is first[0]
    assert teacher_cache_info().maxsize == CACHE_SIZE


def test_resume_after_kill_9_mid_run(tmp_path: Path, tiny: str) -> None:
    url = str(tmp_path / "lake")
    lake, _ = make_audio_lake(url, n=40, seconds=(3.0, 5.0))
    env = {**os.environ, "SER_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cli = "from ser_pipeline.cli import main; main()"
    command = [sys.executable, "-c", cli, "label", "--engine", "local",
               "--lake", url, "--teacher", tiny, "--shard-size", "2", "--max-workers", "1",
               "--threads", "1", "--json"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not lake.parts("teacher_labels"):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no shard landed in 120 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    landed = assert_no_duplicates(lake)
    assert 0 < landed < 40, "the run should have been killed mid-way"
    summary = label_lake(lake, teacher=tiny, shard_size=2)
    assert summary.skipped_already_labeled == landed
    assert summary.clips_labeled == 40 - landed
    assert assert_no_duplicates(lake) == 40 == lake.count("audio")


def test_cli_label_local_json_and_bad_spec(lake_url: str, tiny: str) -> None:
    make_audio_lake(lake_url, n=4)
    runner = CliRunner()
    result = runner.invoke(app, ["label", "--engine", "local", "--lake", lake_url,
                                 "--teacher", tiny, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["clips_labeled"] == 4 and summary["audio_seconds_per_second"] > 0
    assert set(summary) == {  # the keys before LabelSummary, plus its schema_version
        "clips_labeled", "audio_hours", "audio_seconds", "wall_s", "audio_seconds_per_second",
        "skipped_already_labeled", "skipped_quarantined", "quarantined", "duplicates_dropped",
        "shards", "teacher_id", "teacher_sha256", "is_random", "license", "device", "corpora",
        "run_id", "lake", "warning", "schema_version"}
    assert summary["corpora"] == "all" and summary["schema_version"] == 1
    result = runner.invoke(app, ["label", "--engine", "local", "--lake", lake_url,
                                 "--teacher", "hf:/no/such/folder"])
    assert result.exit_code == 2 and "no model folder" in result.output
    result = runner.invoke(app, ["label", "--engine", "local", "--lake", lake_url,
                                 "--teacher", tiny, "--device", "cuda"])
    if not torch.cuda.is_available():
        assert result.exit_code == 2 and "cuda" in result.output.lower()


@pytest.mark.slow
def test_flow_on_dask_local_cluster_equals_local_run(tmp_path: Path, tiny: str,
                                                     prefect_harness: None) -> None:
    """The flow on a real distributed.LocalCluster (2 workers, in-process so the workers
    share the Prefect test server) writes the same labels as the library run."""
    from distributed import LocalCluster

    from flows.label import label_flow

    local_url, dask_url = str(tmp_path / "local"), str(tmp_path / "dask")
    make_audio_lake(local_url, n=10)
    shutil.copytree(local_url, dask_url)
    local = label_lake(Lake.open(local_url), teacher=tiny, shard_size=3)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        summary = label_flow(teacher=tiny, lake=dask_url, dask_address=cluster.scheduler_address,
                             shard_size=3)
    assert summary["clips_labeled"] == local.clips_labeled == 10
    assert summary["shards"] == 4 and summary["teacher_id"] == local.teacher_id
    a, b = labels_of(Lake.open(local_url)), labels_of(Lake.open(dask_url))
    assert a.keys() == b.keys()
    np.testing.assert_allclose(np.array([a[k] for k in a]), np.array([b[k] for k in a]),
                               atol=1e-6)
    again = label_flow(teacher=tiny, lake=dask_url, shard_size=3)  # default thread runner
    assert again["clips_labeled"] == 0 and again["skipped_already_labeled"] == 10
    ids = Lake.open(dask_url).read("teacher_labels", columns=["audio_id"]).column("audio_id")
    assert len(pc.unique(ids)) == len(ids) == 10


def test_shards_span_small_parts_and_split_small_runs(lake_url: str, tiny: str) -> None:
    """Ingest writes parts of 64 files: label shards run across parts, and a run smaller
    than ``workers`` full shards is cut so that every worker gets one (above a floor)."""
    from ser_pipeline.label import plan_shards

    lake = Lake.open(lake_url)
    for seed, corpus in enumerate("abc"):
        make_audio_lake(lake_url, n=4, corpus=corpus, seed=seed)
    parts = lake.parts("audio")
    assert len(parts) == 3
    shards, counts = plan_shards(lake, teacher_id="t", shard_size=5)
    assert [len(s.ids) for s in shards] == [5, 5, 2] and counts.clips_in_scope == 12
    assert [len(s.parts) for s in shards] == [2, 2, 1]
    for shard in shards:  # every id is read from a part the shard names
        in_parts = set().union(*(lake.storage.read_parquet(p, columns=["audio_id"])
                                 .column("audio_id").to_pylist() for p in shard.parts))
        assert set(shard.ids) <= in_parts
    assert sorted(i for s in shards for i in s.ids) == sorted(lake.ids("audio"))
    balanced, _ = plan_shards(lake, teacher_id="t", shard_size=256, workers=2, min_clips=1)
    assert [len(s.ids) for s in balanced] == [6, 6]
    whole, _ = plan_shards(lake, teacher_id="t", shard_size=256, workers=2)
    assert [len(s.ids) for s in whole] == [12]  # too few clips to be worth a second shard
    summary = label_lake(lake, teacher=tiny, shard_size=5, max_workers=1)
    assert summary.shards == 3 and summary.clips_labeled == 12
    assert assert_no_duplicates(lake) == 12


def test_large_blocks_are_mapped_only_while_labeling() -> None:
    """Inside ``large_blocks_mapped`` a 5 MiB block gets a mapping of its own even after
    glibc's moving threshold rose past it; outside (and after the last user leaves) it
    comes from the shared heap, where holes are what made label memory grow. A fresh
    process: in a long-lived one, free holes from earlier tests serve the block first."""
    script = """
import numpy as np
from ser_pipeline.label import large_blocks_mapped
from ser_pipeline.label.memory import _glibc

libc = _glibc()
block = 5 * 2**20

def mapped_bytes_of_a_block():
    libc.malloc_trim(0)  # free space at the heap's top would serve it at any threshold
    before = libc.mallinfo2().hblkhd
    data = np.ones(block // 8)  # numpy takes its data from malloc
    grown = libc.mallinfo2().hblkhd - before
    del data
    return grown

np.ones(24 * 2**20 // 8).sum()  # freeing a mapped 24 MiB block raises the threshold
outside = mapped_bytes_of_a_block()
with large_blocks_mapped() as first:
    inside = mapped_bytes_of_a_block()
    with large_blocks_mapped():
        pass  # a second user leaving does not undo the first one's setting
    still = mapped_bytes_of_a_block()
print(outside < block, first and inside >= block, still >= block,
      mapped_bytes_of_a_block() < block)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True"] * 4
