"""Training benchmark: throughput per student and the dev CCC reached in a CPU budget.

For each student it measures

1. compute throughput: optimiser steps on random crops (forward + backward + AdamW), in
   clips per second, and the ratio to Wav2Small's measured in the same run;
2. a budgeted run with the library's recipe for that student family: ``max_steps`` is
   sized from (1) to fit ``--budget-s`` seconds of training, with the budget also enforced
   as a hard stop, then it prints the best dev CCC against the teacher, every evaluation's
   train loss and dev CCC (the curves), and the target (0.9 on every dimension), met or
   missed and by how much;
3. the ceiling test (``ser_pipeline.train.ceiling``): the Wav2Small run just trained is
   exported as an ``onnx:`` teacher, relabels the same corpora (rows under its own teacher
   id), and a fresh Wav2Small from another seed learns it within ``--ceiling-budget-s``.
   It must reach 0.95 on every dimension; if it does not, the loop is at fault, not the
   data (``--no-ceiling`` skips it).

Usage (the lake ``make demo`` leaves behind: its pool is ``demo-pool``)::

    .venv/bin/python bench/train.py --lake ./lake --teacher-id TEACHER_ID \
        --corpus demo-pool --student wav2small --student mobilenetv4-s \
        --student mobilenetv3-s --budget-s 900

Without a labelled lake, ``--synthetic N`` builds a lake of N synthetic tone clips with
learnable labels (tests/lakes.py) and says so in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds onnx.py, which would shadow the onnx package the ceiling test exports with.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from ser_pipeline.lake import Lake  # noqa: E402
from ser_pipeline.runs import read_run_meta  # noqa: E402
from ser_pipeline.schemas import LABELS  # noqa: E402
from ser_pipeline.students import build_student  # noqa: E402
from ser_pipeline.train import Hyperparams, train_one  # noqa: E402
from ser_pipeline.train.ceiling import CEILING_TARGET, ceiling_test  # noqa: E402

TARGET = 0.9


def verdict(best: dict[str, float], target: float) -> str:
    """``met`` or ``missed by X on D`` for the weakest dimension."""
    weakest = min(LABELS, key=lambda d: best.get(d, 0.0))
    gap = target - best.get(weakest, 0.0)
    return "met" if gap <= 0 else f"missed by {gap:.3f} on {weakest}"


def curve(history: list[dict]) -> str:
    """``step:train-loss/dev-mean`` for every evaluation (train vs dev, at a glance)."""
    points = []
    for h in history:
        loss = "-" if h["train_loss"] is None else f"{h['train_loss']:.3f}"
        points.append(f"{h['step']}:{loss}/{h['dev_ccc']['mean']:.3f}")
    return " ".join(points)


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
    from lakes import bench_training_lake

    return bench_training_lake(clips=n, seconds=(1.5, 4.0), prefix="ser-bench-train-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", help="Labelled lake (local path or s3://).")
    parser.add_argument("--teacher-id", help="Teacher id of the labels to learn.")
    parser.add_argument("--synthetic", type=int, default=0,
                        help="Build a synthetic lake of this many clips instead of --lake.")
    parser.add_argument("--student", action="append", default=None)
    parser.add_argument("--corpus", action="append", default=None,
                        help="Train on these corpora only (e.g. demo-pool; default: all).")
    parser.add_argument("--budget-s", type=float, default=900.0,
                        help="Training budget per student in seconds (default 15 min).")
    parser.add_argument("--crop-s", type=float, default=None,
                        help="Training crop (default: the recipe's).")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Batch size (default: the recipe's).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--throughput-steps", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=None,
                        help="Steps per run instead of sizing them from the throughput.")
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="Also write the results as JSON here.")
    parser.add_argument("--ceiling-budget-s", type=float, default=600.0,
                        help="Training budget of the ceiling test's student (default 10 min).")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="Skip the ceiling test (it needs wav2small among --student).")
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
    chosen = {k: v for k, v in {"crop_s": args.crop_s, "batch_size": args.batch_size}.items()
              if v is not None}
    recipe = Hyperparams(**chosen, num_threads=args.threads, corpora=args.corpus)
    print(f"data: {data}; threads {args.threads}; crop {recipe.crop_s} s; "
          f"batch {recipe.batch_size}; budget {args.budget_s:g} s per student", flush=True)

    if args.workers_ratio:
        ratio = workers_ratio(lake, teacher_id, student=students[0], workers=args.workers_ratio,
                              steps=args.max_steps or 40, crop_s=recipe.crop_s,
                              batch_size=recipe.batch_size, threads=args.threads,
                              seed=args.seed)
        print(f"{ratio['student']}: {ratio['clips_per_s_workers']} clips/s with "
              f"{ratio['workers']} workers vs {ratio['clips_per_s_in_process']} in-process: "
              f"x{ratio['ratio']} (data wait {ratio['data_wait_workers']} vs "
              f"{ratio['data_wait_in_process']})", flush=True)
        print(json.dumps(ratio))
        return

    def throughput_of(student: str) -> float:
        return compute_throughput(student, crop_s=recipe.crop_s, batch_size=recipe.batch_size,
                                  steps=args.throughput_steps)

    throughput = {s: throughput_of(s) for s in students}
    baseline = throughput.get("wav2small") or throughput_of("wav2small")
    results = []
    for student in students:
        # 85% of the budget for steps; the rest covers data loading and dev evaluations.
        steps = args.max_steps or max(
            10, int(0.85 * args.budget_s * throughput[student] / recipe.batch_size))
        hp = replace(recipe, max_steps=steps, patience=100,
                     eval_every=args.eval_every or max(50, steps // 12))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        run = train_one(lake, student=student, teacher_id=teacher_id, seed=args.seed,
                        hyperparams=hp, time_budget_s=args.budget_s)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        best = run["best_dev_ccc"]
        history = read_run_meta(lake, run["run_id"])["history"]
        results.append({
            "student": student, "params": run["params"], "run_id": run["run_id"],
            "throughput_clips_per_s": round(throughput[student], 1),
            "throughput_vs_wav2small": round(throughput[student] / baseline, 3),
            "train_clips_per_s": run["clips_per_s"], "steps": run["steps"],
            "status": run["status"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "best_dev_ccc": {k: round(v, 4) for k, v in best.items()},
            "target": TARGET, "verdict": verdict(best, TARGET), "curve": curve(history),
            "train_clips": run["train_clips"], "dev_clips": run["dev_clips"],
            "hyperparams": read_run_meta(lake, run["run_id"])["hyperparams"],
        })
        r = results[-1]
        print(f"{student:14s} params {r['params']:>9,}  throughput "
              f"{r['throughput_clips_per_s']:7.1f} clips/s "
              f"(x{r['throughput_vs_wav2small']:.2f} vs wav2small)  steps {r['steps']}"
              f"  wall {r['wall_s']:.0f} s  cpu {r['cpu_s']:.0f} s  dev CCC vs teacher "
              f"A {best['arousal']:.3f} D {best['dominance']:.3f} V {best['valence']:.3f}"
              f"\n  curve (step:train loss/dev mean CCC): {r['curve']}", flush=True)
    ceiling = None
    wav2small = next((r for r in results if r["student"] == "wav2small"), None)
    if wav2small and not args.no_ceiling:
        steps = max(10, int(0.85 * args.ceiling_budget_s * throughput["wav2small"]
                            / recipe.batch_size))
        ceiling = ceiling_test(
            lake, teacher_run_id=wav2small["run_id"],
            workdir=tempfile.mkdtemp(prefix="ser-bench-ceiling-"),
            hyperparams={**recipe.to_dict(), "max_steps": steps, "patience": 100,
                         "eval_every": max(50, steps // 12)},
            seed=args.seed + 1, time_budget_s=args.ceiling_budget_s)
        ceiling["curve"] = curve(ceiling.pop("history"))
    print("\ntargets (dev CCC vs teacher, every dimension):")
    for r in results:
        print(f"- {r['student']} >= {TARGET} within {args.budget_s:g} s "
              f"({r['cpu_s']:.0f} CPU-s): {r['verdict']}")
    if ceiling:
        best = ceiling["best_dev_ccc"]
        print(f"- ceiling: wav2small learning a wav2small teacher >= {CEILING_TARGET} within "
              f"{args.ceiling_budget_s:g} s: {verdict(best, CEILING_TARGET)} (A "
              f"{best['arousal']:.3f} D {best['dominance']:.3f} V {best['valence']:.3f}, "
              f"{ceiling['steps']} steps)\n  curve: {ceiling['curve']}")
    report = {"data": data, "budget_s": args.budget_s, "threads": args.threads,
              "recipe": recipe.to_dict(), "results": results, "ceiling": ceiling}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
