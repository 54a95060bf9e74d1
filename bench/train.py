"""Training benchmark: throughput per student and the dev CCC reached in a CPU budget.

For each student it measures

1. compute throughput: optimiser steps on random crops (forward + backward + AdamW), in
   clips per second, and the ratio to Wav2Small's measured in the same run;
2. a budgeted run: ``max_steps`` is sized from (1) to fit ``--budget-s`` seconds of
   training, with the budget also enforced as a hard stop, then it prints the best dev
   CCC against the teacher and its ratio to the target (0.9 for arousal and dominance).

Usage (the demo lake, made by ``ser demo-corpus`` + ``ser ingest`` + ``ser label``)::

    .venv/bin/python bench/train.py --lake ./lake --teacher-id TEACHER_ID \
        --student wav2small --student mobilenetv4-s --budget-s 900

Without a labelled lake, ``--synthetic N`` builds a lake of N synthetic tone clips with
learnable labels (tests/lakes.py) and says so in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ser_pipeline.lake import Lake  # noqa: E402
from ser_pipeline.students import build_student  # noqa: E402
from ser_pipeline.train import DEFAULT_LR, Hyperparams, train_one  # noqa: E402

TARGET = 0.9


def compute_throughput(student: str, *, crop_s: float, batch_size: int, steps: int) -> float:
    """Clips per second of pure training steps (no data loading)."""
    torch.manual_seed(0)
    model = build_student(student).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch_size, int(crop_s * 16000)) * 0.1
    y = torch.rand(batch_size, 3)
    for _ in range(2):  # warm-up (allocator, oneDNN primitives)
        torch.nn.functional.mse_loss(model(x), y).backward()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return batch_size * steps / (time.perf_counter() - start)


def workers_ratio(lake: Lake, teacher_id: str, *, student: str, workers: int, steps: int,
                  crop_s: float, batch_size: int, threads: int, seed: int = 0) -> dict:
    """Clips/s of the same run with ``workers`` data processes against today's in-process loop.

    Audio streams from Parquet row groups (``cache_limit_s=0``), as on a corpus larger than
    RAM, so decoding, cropping and augmentation are part of what is measured; the dev set
    is kept small so that evaluation does not dominate.
    """
    hp = Hyperparams(crop_s=crop_s, batch_size=batch_size, max_steps=steps, eval_every=steps,
                     patience=100, num_threads=threads, cache_limit_s=0.0, max_dev_clips=8)
    runs = {count: train_one(lake, student=student, teacher_id=teacher_id, seed=seed,
                             hyperparams=hp, workers=count) for count in (0, workers)}
    base, fast = runs[0]["clips_per_s"], runs[workers]["clips_per_s"]
    return {"student": student, "workers": workers, "steps": steps,
            "clips_per_s_in_process": base, "clips_per_s_workers": fast,
            "ratio": round(fast / base, 3) if base and fast else None,
            "data_wait_in_process": runs[0]["data_wait_fraction"],
            "data_wait_workers": runs[workers]["data_wait_fraction"]}


def synthetic_lake(n: int) -> tuple[Lake, str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from lakes import add_teacher_labels, make_audio_lake

    url = str(Path(tempfile.mkdtemp(prefix="ser-bench-train-")) / "lake")
    lake, records = make_audio_lake(url, n=n, seconds=(1.5, 4.0), speakers=20)
    add_teacher_labels(lake, records, teacher_id="synthetic-teacher", noise=0.02)
    return lake, "synthetic-teacher"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", help="Labelled lake (local path or s3://).")
    parser.add_argument("--teacher-id", help="Teacher id of the labels to learn.")
    parser.add_argument("--synthetic", type=int, default=0,
                        help="Build a synthetic lake of this many clips instead of --lake.")
    parser.add_argument("--student", action="append", default=None)
    parser.add_argument("--budget-s", type=float, default=900.0,
                        help="Training budget per student in seconds (default 15 min).")
    parser.add_argument("--crop-s", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--throughput-steps", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=None,
                        help="Steps per run instead of sizing them from the throughput.")
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="Also write the results as JSON here.")
    parser.add_argument("--workers-ratio", type=int, default=0, metavar="N",
                        help="Only measure clips/s with N data workers against the in-process "
                        "loop (streamed audio, --max-steps steps, default 40), then exit.")
    args = parser.parse_args()
    students = args.student or ["wav2small", "mobilenetv4-s"]
    torch.set_num_threads(args.threads)

    if args.synthetic:
        lake, teacher_id = synthetic_lake(args.synthetic)
        data = f"synthetic tones ({args.synthetic} clips, tests/lakes.py), teacher {teacher_id}"
    else:
        if not args.lake or not args.teacher_id:
            parser.error("give --lake and --teacher-id, or --synthetic N")
        lake, teacher_id = Lake.open(args.lake), args.teacher_id
        data = f"lake {args.lake}, teacher {teacher_id}"
    print(f"data: {data}; threads {args.threads}; crop {args.crop_s} s; "
          f"batch {args.batch_size}; budget {args.budget_s:g} s per student", flush=True)

    if args.workers_ratio:
        ratio = workers_ratio(lake, teacher_id, student=students[0], workers=args.workers_ratio,
                              steps=args.max_steps or 40, crop_s=args.crop_s,
                              batch_size=args.batch_size, threads=args.threads, seed=args.seed)
        print(f"{ratio['student']}: {ratio['clips_per_s_workers']} clips/s with "
              f"{ratio['workers']} workers vs {ratio['clips_per_s_in_process']} in-process: "
              f"x{ratio['ratio']} (data wait {ratio['data_wait_workers']} vs "
              f"{ratio['data_wait_in_process']})", flush=True)
        print(json.dumps(ratio))
        return
    throughput = {s: compute_throughput(s, crop_s=args.crop_s, batch_size=args.batch_size,
                                        steps=args.throughput_steps) for s in students}
    baseline = throughput.get("wav2small") or compute_throughput(
        "wav2small", crop_s=args.crop_s, batch_size=args.batch_size,
        steps=args.throughput_steps)
    results = []
    for student in students:
        # 85% of the budget for steps; the rest covers data loading and dev evaluations.
        steps = args.max_steps or max(
            10, int(0.85 * args.budget_s * throughput[student] / args.batch_size))
        hp = Hyperparams(crop_s=args.crop_s, batch_size=args.batch_size, max_steps=steps,
                         eval_every=args.eval_every or max(50, steps // 12), patience=100,
                         num_threads=args.threads)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        run = train_one(lake, student=student, teacher_id=teacher_id, seed=args.seed,
                        hyperparams=hp, time_budget_s=args.budget_s)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        best = run["best_dev_ccc"]
        results.append({
            "student": student, "params": run["params"], "run_id": run["run_id"],
            "throughput_clips_per_s": round(throughput[student], 1),
            "throughput_vs_wav2small": round(throughput[student] / baseline, 3),
            "train_clips_per_s": run["clips_per_s"], "steps": run["steps"],
            "status": run["status"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "best_dev_ccc": {k: round(v, 4) for k, v in best.items()},
            "arousal_vs_target": round(best["arousal"] / TARGET, 3),
            "dominance_vs_target": round(best["dominance"] / TARGET, 3),
            "train_clips": run["train_clips"], "dev_clips": run["dev_clips"],
            "lr": DEFAULT_LR["wav2small" if student.startswith("wav2small") else "mobilenet"],
        })
        r = results[-1]
        print(f"{student:14s} params {r['params']:>9,}  throughput "
              f"{r['throughput_clips_per_s']:7.1f} clips/s "
              f"(x{r['throughput_vs_wav2small']:.2f} vs wav2small)  steps {r['steps']}"
              f"  wall {r['wall_s']:.0f} s  cpu {r['cpu_s']:.0f} s  dev CCC vs teacher "
              f"A {best['arousal']:.3f} D {best['dominance']:.3f} V {best['valence']:.3f} "
              f"(A/target {r['arousal_vs_target']:.2f}, D/target {r['dominance_vs_target']:.2f})",
              flush=True)
    report = {"data": data, "budget_s": args.budget_s, "threads": args.threads,
              "crop_s": args.crop_s, "batch_size": args.batch_size, "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
