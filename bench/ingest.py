"""Ingest throughput against a bare decode+resample loop, measured in the same run.

    .venv/bin/python bench/ingest.py [--n 200] [--corpus DIR] [--repeats 2]

The baseline reads each file, decodes it with soundfile, downmixes and resamples it to
16 kHz with soxr (the same calls ingest makes) and nothing else. Ingest additionally walks
the folder, hashes the bytes, checks the container, encodes FLAC and writes Parquet parts.
Ratio = ingest audio-seconds/s / baseline audio-seconds/s (target >= 0.7). The baseline
is one thread; ingest is measured with one worker (like for like) and with the default
bound of two workers. Best of ``--repeats`` runs each, fresh lake every run. On a shared
machine wall-clock ratios swing with the neighbours' load, so the CPU-time ratio (audio
seconds per CPU second of this process) is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ser_pipeline.audio import to_mono_16k  # noqa: E402
from ser_pipeline.demo import make_demo_corpus  # noqa: E402
from ser_pipeline.ingest import ingest  # noqa: E402
from ser_pipeline.lake import Lake  # noqa: E402
from ser_pipeline.recipes import AUDIO_EXTENSIONS  # noqa: E402


def audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def bare_loop(files: list[Path]) -> tuple[float, float, float]:
    """(audio seconds, wall seconds, CPU seconds) for read + decode + downmix + resample."""
    import io

    cpu = time.process_time()
    started = time.perf_counter()
    seconds = 0.0
    for path in files:
        data = path.read_bytes()
        frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        signal = to_mono_16k(frames, rate)
        seconds += signal.size / 16_000
    return seconds, time.perf_counter() - started, time.process_time() - cpu


def run_ingest(root: Path, workers: int) -> tuple[float, float, float, dict]:
    with tempfile.TemporaryDirectory() as lake_dir:
        cpu = time.process_time()
        started = time.perf_counter()
        summary = ingest(Lake.open(lake_dir), str(root), corpus="bench", recipe="csv",
                         max_workers=workers)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
    return summary["audio_seconds"], wall, cpu, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="demo clips to synthesize")
    parser.add_argument("--corpus", help="use this existing csv-recipe corpus instead")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("SER_PROGRESS", "0")
    owned = None
    if args.corpus:
        root = Path(args.corpus)
    else:
        owned = tempfile.mkdtemp(prefix="ser-bench-")
        root = Path(owned)
        print(f"synthesizing {args.n} demo clips into {root} ...", file=sys.stderr)
        make_demo_corpus(str(root), n=args.n, seed=0)
    try:
        files = audio_files(root)
        bare_loop(files)  # warm the page cache and libraries
        results: dict[str, list[float]] = {"bare": [], "ingest_1": [], "ingest_2": [],
                                           "bare_cpu": [], "ingest_1_cpu": []}
        audio = {}
        for _ in range(args.repeats):
            seconds, wall, cpu = bare_loop(files)
            results["bare"].append(seconds / wall)
            results["bare_cpu"].append(seconds / cpu)
            audio["bare"] = seconds
            for workers in (1, 2):
                seconds, wall, cpu, summary = run_ingest(root, workers)
                assert summary["quarantined_total"] == 0, summary["quarantined"]
                results[f"ingest_{workers}"].append(seconds / wall)
                if workers == 1:
                    results["ingest_1_cpu"].append(seconds / cpu)
                audio[f"ingest_{workers}"] = seconds
        best = {k: max(v) for k, v in results.items()}
        report = {
            "files": len(files),
            "audio_seconds": round(audio["bare"], 1),
            "bare_audio_s_per_s": round(best["bare"], 1),
            "ingest_1_worker_audio_s_per_s": round(best["ingest_1"], 1),
            "ingest_2_workers_audio_s_per_s": round(best["ingest_2"], 1),
            "ratio_1_worker": round(best["ingest_1"] / best["bare"], 3),
            "ratio_2_workers": round(best["ingest_2"] / best["bare"], 3),
            "bare_audio_s_per_cpu_s": round(best["bare_cpu"], 1),
            "ingest_audio_s_per_cpu_s": round(best["ingest_1_cpu"], 1),
            "ratio_cpu_time": round(best["ingest_1_cpu"] / best["bare_cpu"], 3),
            "target": 0.7,
            "cpus": os.cpu_count(),
        }
        assert np.isclose(audio["bare"], audio["ingest_1"], rtol=1e-3), audio
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            for key, value in report.items():
                print(f"{key:32s} {value}")
            verdict = "meets" if report["ratio_1_worker"] >= 0.7 else "MISSES"
            print(f"like-for-like ratio {report['ratio_1_worker']} {verdict} the 0.7 target")
    finally:
        if owned:
            shutil.rmtree(owned, ignore_errors=True)


if __name__ == "__main__":
    main()
