"""Training throughput on a device: clips/s, data-wait fraction, GPU memory and utilisation.

Runs the real training loop (``ser_pipeline.train.train_one``: data path, mixed precision,
optimiser, checkpoints) for each student and each ``--workers`` count, each run capped by
steps and by a wall-clock share of ``--budget-s``, and prints one line per run plus a JSON
report. GPU utilisation and memory come from ``nvidia-smi`` (sampled every 0.5 s) where it
exists, and peak allocated memory from torch. The audio streams from Parquet row groups
(not the in-memory cache) unless ``--cache``, as on a corpus larger than RAM.

Designed for one short call on a lent H100/H200 with nothing to install beyond the venv
(a synthetic lake is built in a temporary folder when no ``--lake`` is given)::

    .venv/bin/python bench/train_gpu.py                          # auto device, < 5 min
    .venv/bin/python bench/train_gpu.py --device cpu --steps 6 --clips 48 --workers 0,2 \\
        --student wav2small --budget-s 120                        # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds scripts (bench/onnx.py) that would shadow real packages
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402

from ser_pipeline.lake import Lake  # noqa: E402
from ser_pipeline.train import Hyperparams, train_one  # noqa: E402
from ser_pipeline.train.device import resolve_device  # noqa: E402


class GpuSampler:
    """Samples ``nvidia-smi`` utilisation and memory of one GPU in a background thread."""

    def __init__(self, index: int | None) -> None:
        self.index, self.samples = index, []
        self.available = index is not None and shutil.which("nvidia-smi") is not None
        self._stop = threading.Event()

    def _poll(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits", "-i", str(self.index)]
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
                util, mem = (float(v) for v in out.strip().split(","))
                self.samples.append((util, mem))
            except (OSError, ValueError, subprocess.SubprocessError):
                pass

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join(timeout=6)

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_util_mean_pct": None, "gpu_util_max_pct": None,
                    "gpu_mem_used_max_mib": None}
        utils = [u for u, _ in self.samples]
        return {"gpu_util_mean_pct": round(sum(utils) / len(utils), 1),
                "gpu_util_max_pct": max(utils),
                "gpu_mem_used_max_mib": max(m for _, m in self.samples)}


def synthetic_lake(clips: int) -> tuple[Lake, str]:
    from lakes import bench_training_lake

    return bench_training_lake(clips=clips, seconds=(2.0, 6.0), prefix="ser-bench-train-gpu-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
    parser.add_argument("--lake", help="Labelled lake (default: a synthetic one).")
    parser.add_argument("--teacher-id")
    parser.add_argument("--clips", type=int, default=600, help="Synthetic lake size.")
    parser.add_argument("--student", action="append", default=None)
    parser.add_argument("--workers", default=None,
                        help="Comma list of data worker counts (default 0,4 on CUDA; 0,2 CPU).")
    parser.add_argument("--steps", type=int, default=None,
                        help="Steps per run (default 300 on CUDA, 10 on CPU).")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Clips per step (default 64 on CUDA, 16 on CPU).")
    parser.add_argument("--crop-s", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU).")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward.")
    parser.add_argument("--cache", action="store_true", help="Cache decoded audio in memory.")
    parser.add_argument("--budget-s", type=float, default=240.0,
                        help="Wall-clock budget for all runs together (default 4 min).")
    parser.add_argument("--out", help="Also write the JSON report here.")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    students = args.student or ["wav2small", "mobilenetv4-s"]
    workers = [int(w) for w in (args.workers or ("0,4" if cuda else "0,2")).split(",")]
    steps = args.steps or (300 if cuda else 10)
    batch = args.batch_size or (64 if cuda else 16)
    started = time.monotonic()
    if args.lake:
        if not args.teacher_id:
            parser.error("--lake needs --teacher-id")
        lake, teacher_id = Lake.open(args.lake), args.teacher_id
    else:
        lake, teacher_id = synthetic_lake(args.clips)
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"device {device} ({name}); torch {torch.__version__}; lake {lake.url} "
          f"(built in {time.monotonic() - started:.0f} s); batch {batch}; crop {args.crop_s} s;"
          f" steps {steps}; budget {args.budget_s:g} s", flush=True)
    share = max(10.0, (args.budget_s - (time.monotonic() - started))
                / (len(students) * len(workers)))
    hp = Hyperparams(crop_s=args.crop_s, batch_size=batch, max_steps=steps, eval_every=steps,
                     patience=100, num_threads=args.threads, max_dev_clips=32,
                     cache_limit_s=float("inf") if args.cache else 0.0)
    results = []
    for student in students:
        for count in workers:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            with GpuSampler(device.index if cuda else None) as sampler:
                run = train_one(lake, student=student, teacher_id=teacher_id, hyperparams=hp,
                                device=str(device), workers=count, compile=args.compile,
                                time_budget_s=share)
            result = {"student": student, "workers": count, "steps": run["steps"],
                      "status": run["status"], "precision": run["precision"],
                      "clips_per_s": run["clips_per_s"],
                      "data_wait_fraction": run["data_wait_fraction"],
                      "torch_peak_mem_mib": round(torch.cuda.max_memory_allocated(device)
                                                  / 2**20, 1) if cuda else None,
                      **sampler.summary()}
            results.append(result)
            print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    report = {"device": str(device), "device_name": name, "torch": torch.__version__,
              "batch_size": batch, "crop_s": args.crop_s, "steps": steps,
              "cache": args.cache, "compile": args.compile,
              "seconds": round(time.monotonic() - started, 1), "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
