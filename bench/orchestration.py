"""Prefect's overhead on labeling: the label flow against ``label_lake`` on the same work.

    .venv/bin/python bench/orchestration.py                 # 10,000 clips of 1-3 s
    .venv/bin/python bench/orchestration.py --quick         # 200 clips, smoke run

One synthetic audio lake (parts of ``--part-size`` clips, as ingest writes them) is built
once and copied for every measured run, so both paths label exactly the same clips with
the same tiny random-weight teacher. Each run is a fresh Python process:

* **library**: ``label_lake(lake, teacher=spec)``, the default bounded thread pool.
* **flow**: ``label_flow(teacher=spec, lake=...)`` with the default task runner, on an
  ephemeral Prefect server (fresh ``PREFECT_HOME`` per bench invocation). The server's
  start is timed on its own, before the flow, and reported separately: the headline ratio
  is flow call / library call; ``cold`` adds the server start (what a user waits for on a
  first run).

Both also report CPU seconds (the flow's include the server subprocess), which the
neighbours' load on a shared machine disturbs less than wall time. Task runs are counted
through the Prefect API for the flow run and must equal the shard count.
Target: overhead (flow / library - 1) <= 10 %.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds scripts (bench/onnx.py) that would shadow real packages
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("SER_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.worker_runs import add_options, run_worker  # noqa: E402  (needs ROOT on sys.path)

PREFECT_ENV = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


# -- the shared input -----------------------------------------------------------------------
def write_part(url: str, start: int, stop: int, seed: int) -> int:
    """Write clips ``start..stop-1`` (1-3 s synthetic tones) as one audio part file."""
    import hashlib

    import numpy as np
    from lakes import synthetic_params, tone

    from ser_pipeline.audio import encode_flac
    from ser_pipeline.lake import Lake, content_key, utcnow
    from ser_pipeline.schemas import SAMPLE_RATE

    rows = []
    for index in range(start, stop):
        seconds = float(np.random.default_rng(seed * 1_000_003 + index).uniform(1.0, 3.0))
        signal = tone(**synthetic_params(index, seed), seconds=seconds, seed=seed + index)
        flac = encode_flac(signal)
        name = f"clip{index:06d}.flac"
        rows.append({"audio_id": hashlib.sha256(flac).hexdigest(),
                     "audio": {"bytes": flac, "path": name}, "corpus": "bench",
                     "source_path": name, "duration_s": signal.size / SAMPLE_RATE,
                     "orig_sample_rate": SAMPLE_RATE, "orig_channels": 1,
                     "orig_format": "FLAC/PCM_16", "speaker": f"spk{index % 20}",
                     "split": None, "is_silent": False, "ingested_at": utcnow()})
    Lake.open(url).write_part("audio", rows, key=content_key("bench-orch", seed, start, stop))
    return len(rows)


def build_lake(url: str, *, clips: int, part_size: int, seed: int = 0) -> int:
    """The audio lake both paths label, one part per ``part_size`` clips (2 processes)."""
    bounds = [(start, min(start + part_size, clips)) for start in range(0, clips, part_size)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(write_part, [url] * len(bounds), *zip(*bounds, strict=True),
                      [seed] * len(bounds)))
    return len(bounds)


# -- one measured run (a fresh process) -----------------------------------------------------
def _cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_library(lake_url: str, teacher: str, shard_size: int) -> dict:
    from ser_pipeline.label import label_lake
    from ser_pipeline.lake import Lake

    pids = [os.getpid()]
    cpu, started = _cpu_seconds(pids), time.perf_counter()
    summary = label_lake(Lake.open(lake_url), teacher=teacher, shard_size=shard_size)
    return {"wall_s": time.perf_counter() - started, "cpu_s": _cpu_seconds(pids) - cpu,
            "clips_labeled": summary.clips_labeled, "shards": summary.shards}


def count_task_runs(flow_run_id) -> tuple[int, dict]:
    """Task runs of one flow run, read back from the Prefect API (paged), by name prefix."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                limit=200, offset=len(runs))
            runs.extend(page)
            if len(page) < 200:
                break
    kinds: dict[str, int] = {}
    for run in runs:
        kind = run.name.rsplit("-", 1)[0] if run.name[-1:].isdigit() else run.name
        kinds[kind] = kinds.get(kind, 0) + 1
    states = {run.state_type.value if run.state_type else "none" for run in runs}
    return len(runs), {"by_name": kinds, "states": sorted(states)}


def run_flow(lake_url: str, teacher: str, shard_size: int) -> dict:
    started = time.perf_counter()
    from prefect.server.api.server import SubprocessASGIServer

    from flows.label import label_flow

    imported = time.perf_counter()
    server = SubprocessASGIServer()
    server.start()  # what the first flow call would do; timed on its own
    server_up = time.perf_counter()
    pids = [os.getpid(), server.server_process.pid]
    server_cpu = _cpu_seconds(pids[1:])
    cpu, flow_started = _cpu_seconds(pids), time.perf_counter()
    state = label_flow(teacher=teacher, lake=lake_url, shard_size=shard_size,
                       return_state=True)
    wall = time.perf_counter() - flow_started
    cpu = _cpu_seconds(pids) - cpu
    server_cpu = _cpu_seconds(pids[1:]) - server_cpu
    summary = state.result()
    task_runs, detail = count_task_runs(state.state_details.flow_run_id)
    return {"wall_s": wall, "cpu_s": cpu, "clips_labeled": summary["clips_labeled"],
            "shards": summary["shards"], "task_runs": task_runs, "task_runs_detail": detail,
            "import_s": imported - started, "server_start_s": server_up - imported,
            "server_cpu_s": server_cpu}


def worker(args: argparse.Namespace) -> None:
    os.environ.setdefault("SER_MAX_WORKERS", "2")
    # torch + transformers imports are the same one-time cost on both paths: pay it before
    # the clock starts (the flow path's prefect import would otherwise pre-pay part of it)
    import ser_pipeline.label  # noqa: F401
    import ser_pipeline.teacher.model  # noqa: F401

    fn = run_library if args.worker == "library" else run_flow
    result = fn(args.lake, args.teacher, args.shard_size)
    Path(args.result).write_text(json.dumps(result))


def measure(path: str, *, lake: Path, copy: Path, teacher: str, shard_size: int,
            prefect_home: Path) -> dict:
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(lake, copy)
    env = {**os.environ, **PREFECT_ENV, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    result = run_worker(__file__, path, lake=copy, result=copy.with_suffix(".json"),
                        options=["--teacher", teacher]
                        + (["--shard-size", str(shard_size)] if shard_size else []),
                        env=env)
    result["process_s"] = time.perf_counter() - started  # interpreter start to exit
    shutil.rmtree(copy, ignore_errors=True)
    return result


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--part-size", type=int, default=64,
                        help="clips per audio part file (default 64, as ingest writes them)")
    parser.add_argument("--shard-size", type=int, default=None,
                        help="clips per shard task (default: the settings default, "
                        "label_shard_size)")
    parser.add_argument("--repeats", type=int, default=1, help="library+flow pairs")
    add_options(parser, quick="smoke run: 200 clips, parts of 50, shards of 16",
                workers=("library", "flow"))
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    if args.quick:
        args.clips, args.part_size, args.shard_size = 200, 50, 16

    from ser_pipeline.teacher import init_teacher

    with tempfile.TemporaryDirectory(prefix="bench-orch-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        parts = build_lake(str(work / "lake"), clips=args.clips, part_size=args.part_size)
        built = time.perf_counter() - started
        teacher = f"hf:{init_teacher(work / 'teacher', size='tiny')}"
        print(f"lake: {args.clips} clips of 1-3 s in {parts} audio parts (built in "
              f"{built:.0f} s); shard size {args.shard_size or 'default'}; tiny random teacher",
              flush=True)
        runs: dict[str, list[dict]] = {"library": [], "flow": []}
        for repeat in range(args.repeats):
            order = ("library", "flow") if repeat % 2 == 0 else ("flow", "library")
            for path in order:
                result = measure(path, lake=work / "lake", copy=work / f"lake-{path}",
                                 teacher=teacher, shard_size=args.shard_size,
                                 prefect_home=work / "prefect-home")
                runs[path].append(result)
                extra = (f", server start {result['server_start_s']:.1f} s, "
                         f"{result['task_runs']} task runs" if path == "flow" else "")
                print(f"  [{repeat + 1}/{args.repeats}] {path:7s} {result['wall_s']:7.1f} s "
                      f"wall, {result['cpu_s']:7.1f} s CPU{extra}", flush=True)
    lib, flow = runs["library"], runs["flow"]
    for result in lib + flow:
        if result["clips_labeled"] != args.clips:
            sys.exit(f"a run labeled {result['clips_labeled']} clips, expected {args.clips}")
    shards = flow[0]["shards"]
    ratios = [f["wall_s"] / b["wall_s"] for f, b in zip(flow, lib, strict=True)]
    cold = [(f["wall_s"] + f["server_start_s"]) / b["wall_s"]
            for f, b in zip(flow, lib, strict=True)]
    cpu_ratios = [f["cpu_s"] / b["cpu_s"] for f, b in zip(flow, lib, strict=True)]
    process = [f["process_s"] / b["process_s"] for f, b in zip(flow, lib, strict=True)]
    report = {
        "clips": args.clips, "audio_parts": parts, "shard_size": args.shard_size,
        "shards": shards, "task_runs": [f["task_runs"] for f in flow],
        "task_runs_by_name": flow[0]["task_runs_detail"]["by_name"],
        "library_wall_s": [round(b["wall_s"], 2) for b in lib],
        "flow_wall_s": [round(f["wall_s"], 2) for f in flow],
        "server_start_s": [round(f["server_start_s"], 2) for f in flow],
        "prefect_import_s": [round(f["import_s"], 2) for f in flow],
        "library_cpu_s": [round(b["cpu_s"], 2) for b in lib],
        "flow_cpu_s": [round(f["cpu_s"], 2) for f in flow],
        "server_cpu_s": [round(f["server_cpu_s"], 2) for f in flow],
        "ratio": [round(r, 4) for r in ratios],
        "ratio_cold": [round(r, 4) for r in cold],
        "ratio_cpu": [round(r, 4) for r in cpu_ratios],
        "ratio_process": [round(r, 4) for r in process],
        "overhead_pct": round((statistics.median(ratios) - 1) * 100, 2),
        "load_average": os.getloadavg(),
    }
    print(f"clips {args.clips}, audio part files {parts}, shards {shards}, Prefect task runs "
          f"{report['task_runs']} (by name {report['task_runs_by_name']})")
    print(f"library label_lake  wall s: {spread([b['wall_s'] for b in lib])}")
    print(f"Prefect label_flow  wall s: {spread([f['wall_s'] for f in flow])}  (server "
          f"already up; its start: {spread([f['server_start_s'] for f in flow])} s, "
          f"import of prefect + flow: {spread([f['import_s'] for f in flow])} s)")
    print(f"ratio flow/library (wall): {spread(ratios)}  -> overhead "
          f"{report['overhead_pct']:+.1f} % (target <= 10 %)")
    print(f"ratio incl. server start (cold): {spread(cold)}")
    print(f"ratio whole process (interpreter start to exit): {spread(process)}")
    print(f"ratio flow/library (CPU s, flow incl. server): {spread(cpu_ratios)}  (server "
          f"CPU s: {spread([f['server_cpu_s'] for f in flow])})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
