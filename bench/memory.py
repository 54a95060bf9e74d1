"""Peak memory of ingest and label at N and 10xN clips, and of the large-size teacher.

    .venv/bin/python bench/memory.py                 # N = 200 (and 2,000), large teacher
    .venv/bin/python bench/memory.py --quick         # N = 20 (and 200), no large teacher

Real WAV files (1-3 s tones at 16, 22.05 and 44.1 kHz, so ingest resamples) are written
to disk, then every stage runs in a FRESH Python process, which reports:

* ``peak``: the process's peak RSS over its whole life (``VmHWM`` in /proc/self/status;
  ``ru_maxrss`` of a child is polluted across fork/exec here),
* ``stage peak``: the peak during the stage call alone (VmHWM reset via
  ``/proc/self/clear_refs`` after the imports), and ``growth`` = stage peak - RSS before
  the call, which is what a stage that accumulates rows or bytes would inflate (the
  interpreter, torch and transformers are a fixed ~0.5 GB that would hide it).

Stages: ``ingest`` (folder recipe, library ``ingest``), ``label`` (``label_lake`` with the
tiny random teacher) and ``label-large`` (the audEERING-shape 12-layer large teacher,
random weights, fp32 on CPU, a few 2-20 s clips so that batches reach the default
``batch_seconds`` budget). Targets: peak(10N) / peak(N) <= 1.2 per stage (flat memory)
and the large teacher's peak <= 3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds scripts (bench/onnx.py) that would shadow real packages
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SER_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.worker_runs import add_options, run_worker  # noqa: E402  (needs ROOT on sys.path)

RATES = (16_000, 22_050, 44_100)
MIB = 2**20


# -- the corpora ----------------------------------------------------------------------------
def write_corpus(folder: Path, *, n: int, seconds: tuple[float, float], seed: int = 0) -> float:
    """``n`` WAV files of harmonic tones in noise; returns their total duration (s)."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for index in range(n):
        rng = np.random.default_rng(seed * 1_000_003 + index)
        rate = RATES[index % len(RATES)]
        duration = float(rng.uniform(*seconds)) if seconds[0] != seconds[1] else seconds[0]
        t = np.arange(int(duration * rate)) / rate
        f0 = rng.uniform(90, 320)
        signal = sum(0.5**k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(5))
        signal = 0.2 * signal / np.abs(signal).max() + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / f"clip{index:06d}.wav", signal, rate, subtype="PCM_16")
        total += duration
    return total


# -- one stage in a fresh process -----------------------------------------------------------
def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def worker(args: argparse.Namespace) -> None:
    import ser_pipeline.ingest  # noqa: F401
    import ser_pipeline.label  # noqa: F401
    import ser_pipeline.teacher.model  # noqa: F401
    from ser_pipeline.lake import Lake

    lake = Lake.open(args.lake)
    before_kib = _status_kib("VmRSS")
    imports_peak = _status_kib("VmHWM")
    try:  # reset VmHWM so the stage's own peak is measured apart from the imports'
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    started = time.perf_counter()
    if args.worker == "ingest":
        from ser_pipeline.ingest import ingest

        summary = ingest(lake, args.source, corpus="mem")
        count = summary["ingested"]
    else:
        from ser_pipeline.label import label_lake

        count = label_lake(lake, teacher=args.teacher).clips_labeled
    elapsed = time.perf_counter() - started
    stage_peak = _status_kib("VmHWM")
    Path(args.result).write_text(json.dumps({
        "clips": count, "seconds": round(elapsed, 2), "rss_before_mib": before_kib / 1024,
        "stage_peak_mib": stage_peak / 1024 if reset else None,
        "growth_mib": (stage_peak - before_kib) / 1024 if reset else None,
        "peak_mib": max(imports_peak, stage_peak) / 1024}))


def measure(stage: str, *, lake: Path, source: Path | None = None,
            teacher: str | None = None) -> dict:
    options = []
    if source is not None:
        options += ["--source", str(source)]
    if teacher is not None:
        options += ["--teacher", teacher]
    return run_worker(__file__, stage, lake=lake, result=lake.parent / f"{lake.name}-{stage}.json",
                      options=options)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="clips in the small corpus")
    parser.add_argument("--factor", type=int, default=10, help="the big corpus is factor x n")
    parser.add_argument("--large-clips", type=int, default=6,
                        help="clips (2-20 s) for the large teacher; 0 skips it")
    parser.add_argument("--repeats", type=int, default=1)
    add_options(parser, quick="smoke run: n=20, no large teacher", workers=("ingest", "label"))
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    if args.quick:
        args.n, args.large_clips = 20, 0

    from ser_pipeline.teacher import init_teacher

    sizes = {"N": args.n, "10N": args.n * args.factor}
    rows: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        work = Path(tmp)
        tiny = f"hf:{init_teacher(work / 'tiny', size='tiny')}"
        corpora = {}
        for name, n in sizes.items():
            seconds = write_corpus(work / f"corpus-{name}", n=n, seconds=(1.0, 3.0))
            corpora[name] = work / f"corpus-{name}"
            print(f"corpus {name}: {n} WAV files, {seconds:.0f} s of audio", flush=True)
        for repeat in range(args.repeats):
            for name in sizes:
                lake = work / f"lake-{name}"
                shutil.rmtree(lake, ignore_errors=True)
                for stage in ("ingest", "label"):
                    result = measure(stage, lake=lake, source=corpora[name], teacher=tiny)
                    if result["clips"] != sizes[name]:
                        sys.exit(f"{stage} at {name} handled {result['clips']} clips, "
                                 f"expected {sizes[name]}")
                    rows.setdefault(stage, {}).setdefault(name, []).append(result)
                    print(f"  [{repeat + 1}/{args.repeats}] {stage:6s} {name:>3s} "
                          f"({sizes[name]} clips, {result['seconds']:.0f} s): peak "
                          f"{result['peak_mib']:.0f} MiB, stage peak "
                          f"{_mib(result['stage_peak_mib'])} MiB, growth "
                          f"{_mib(result['growth_mib'])} MiB", flush=True)
        large = None
        if args.large_clips:
            folder = init_teacher(work / "large", size="large")
            write_corpus(work / "corpus-large", n=args.large_clips, seconds=(2.0, 20.0),
                         seed=7)
            lake = work / "lake-large"
            measure("ingest", lake=lake, source=work / "corpus-large")
            large = [measure("label", lake=lake, teacher=f"hf:{folder}")
                     for _ in range(args.repeats)]
            for result in large:
                print(f"  label-large ({args.large_clips} clips, {result['seconds']:.0f} s): "
                      f"peak {result['peak_mib']:.0f} MiB, stage peak "
                      f"{_mib(result['stage_peak_mib'])} MiB", flush=True)

    report: dict = {"n": args.n, "factor": args.factor, "stages": {},
                    "load_average": os.getloadavg()}
    print(f"\npeak RSS (MiB), fresh process per run; N = {args.n}, 10N = {sizes['10N']}")
    for stage, by_size in rows.items():
        small, big = by_size["N"], by_size["10N"]
        ratios = [b["peak_mib"] / s["peak_mib"] for s, b in zip(small, big, strict=True)]
        growth = [(s["growth_mib"] or 0.0, b["growth_mib"] or 0.0)
                  for s, b in zip(small, big, strict=True)]
        report["stages"][stage] = {
            "peak_mib_N": [round(s["peak_mib"], 1) for s in small],
            "peak_mib_10N": [round(b["peak_mib"], 1) for b in big],
            "growth_mib_N": [round(g[0], 1) for g in growth],
            "growth_mib_10N": [round(g[1], 1) for g in growth],
            "ratio": [round(r, 4) for r in ratios],
        }
        print(f"{stage:12s} N {statistics.median(s['peak_mib'] for s in small):7.0f}   10N "
              f"{statistics.median(b['peak_mib'] for b in big):7.0f}   ratio 10N/N "
              f"{statistics.median(ratios):.3f} (target <= 1.2)   stage growth N "
              f"{statistics.median(g[0] for g in growth):.0f} -> 10N "
              f"{statistics.median(g[1] for g in growth):.0f}")
    if large:
        peak = statistics.median(r["peak_mib"] for r in large)
        report["label_large"] = {"clips": args.large_clips,
                                 "peak_mib": [round(r["peak_mib"], 1) for r in large],
                                 "stage_peak_mib": [r["stage_peak_mib"] for r in large],
                                 "seconds": [r["seconds"] for r in large]}
        print(f"label-large  peak {peak:.0f} MiB = {peak * MIB / 1e9:.2f} GB "
              f"(target <= 3 GB)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
