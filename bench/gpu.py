"""The GPU benchmarks in one bounded run, one results file (issue 21 item 5).

Three steps, each a subprocess with its own timeout inside ``--budget-s`` (8 min by
default, for one call on a lent H100/H200):

1. ``teacher``: labeling throughput of the large wav2vec2 shape from a Parquet lake
   (``bench/teacher_gpu.py --no-prefect``, bf16 and fp16, batch 32/64/128); target
   >= 5,000 audio-seconds per second.
2. ``train``: student training throughput and the share of time spent waiting for data
   (``bench/train_gpu.py``: wav2small and mobilenetv4-s, 0 and 4 data workers).
3. ``distill``: the pipeline on a small lake with the device: ingest, then label with the
   teacher on the device (what ``ser label --device`` does; ``ser distill`` has no
   teacher-device option: its label stage runs on the CPU, so the teacher runs on the
   device first and distill's label stage then finds nothing new), then
   ``ser distill --train-device <device>``, which trains, evaluates and publishes to a
   registry in the work folder.

``--device cpu`` runs the same steps at smoke sizes (tests/test_bench_gpu.py does that).

    bench/gpu.sh                                  # on the GPU host: results in bench/out/gpu.json
    python bench/gpu.py --device cpu --out /tmp/gpu.json   # smoke run, ~1-2 min
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# bench/ holds bench/onnx.py, which would shadow the onnx package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

STEPS = ("teacher", "train", "distill")
#: Share of the budget each step may use; time a step leaves unused passes on.
SHARES = {"teacher": 0.35, "train": 0.25, "distill": 0.4}
TEACHER_TARGET_AUDIO_S_PER_S = 5000.0

#: Sizes per device kind: the real benchmark on CUDA, a smoke run on the CPU.
SIZES = {
    "cuda": {
        "teacher": ["--size", "large", "--clips", "1500", "--precisions", "bf16,fp16",
                    "--batch-sizes", "32,64,128"],
        "train": ["--clips", "600", "--workers", "0,4"],
        "distill": {"clips": 160, "seconds": (2.0, 6.0), "max_steps": 100,
                    "students": ["wav2small", "mobilenetv3-s"], "label_batch": 32},
    },
    "cpu": {
        "teacher": ["--size", "tiny", "--clips", "6", "--min-s", "1", "--max-s", "12",
                    "--precisions", "fp32", "--batch-sizes", "4", "--decode-workers", "1",
                    "--threads", "1"],
        "train": ["--clips", "24", "--workers", "0", "--student", "wav2small", "--steps", "4",
                  "--batch-size", "8", "--threads", "1"],
        "distill": {"clips": 16, "seconds": (2.2, 3.0), "max_steps": 6,
                    "students": ["wav2small"], "label_batch": 8},
    },
}


class StepError(RuntimeError):
    """A step failed; the message holds the command and the tail of its log."""


def run(command: list[str], *, log: Path, timeout: float, env: dict[str, str]) -> str:
    """Run ``command``; stdout is returned, stdout+stderr also go to ``log``."""
    started = time.monotonic()
    with open(log, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=handle, text=True, timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired as error:
            raise StepError(f"timed out after {time.monotonic() - started:.0f} s: "
                            f"{' '.join(command[:4])} ...") from error
        handle.write(done.stdout)
    if done.returncode != 0:
        tail = log.read_text()[-1500:]
        raise StepError(f"exit {done.returncode}: {' '.join(command[:4])} ...\n{tail}")
    return done.stdout


def last_json(text: str) -> dict:
    """The last JSON object printed on its own lines (logs may precede it)."""
    start = text.rfind("\n{")
    start = 0 if text.lstrip().startswith("{") and start < 0 else start + 1
    return json.loads(text[start:])


def teacher_step(args: argparse.Namespace, work: Path, timeout: float, env: dict) -> dict:
    out = work / "teacher.json"
    run([sys.executable, "bench/teacher_gpu.py", "--no-prefect", "--device", args.device,
         *SIZES[args.kind]["teacher"], "--out", str(out)],
        log=work / "teacher.log", timeout=timeout, env=env)
    report = json.loads(out.read_text())
    best = report["best_audio_s_per_s"]
    return {"device_name": report["device"], "params": report["params"],
            "best_audio_s_per_s": best, "target_audio_s_per_s": TEACHER_TARGET_AUDIO_S_PER_S,
            "target_met": best >= TEACHER_TARGET_AUDIO_S_PER_S,
            "runs": report["runs"]}


def train_step(args: argparse.Namespace, work: Path, timeout: float, env: dict) -> dict:
    out = work / "train.json"
    # train_gpu.py splits its own budget over its runs; leave it time to build its lake.
    run([sys.executable, "bench/train_gpu.py", "--device", args.device,
         *SIZES[args.kind]["train"], "--budget-s", f"{max(20.0, 0.75 * timeout):.0f}",
         "--out", str(out)], log=work / "train.log", timeout=timeout, env=env)
    report = json.loads(out.read_text())
    return {"device_name": report["device_name"], "batch_size": report["batch_size"],
            "crop_s": report["crop_s"], "steps": report["steps"], "runs": report["results"]}


def write_corpus(folder: Path, *, clips: int, seconds: tuple[float, float]) -> Path:
    """A csv corpus of synthetic tones with human labels (tests/lakes.py's generator)."""
    import numpy as np
    import soundfile as sf
    from lakes import synthetic_labels, synthetic_params, tone

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "arousal", "dominance", "valence", "speaker"])
        for index in range(clips):
            params = synthetic_params(index, seed=11)
            length = float(rng.uniform(*seconds))
            sf.write(folder / f"clip{index:04d}.wav",
                     tone(**params, seconds=length, seed=index), 16_000)
            writer.writerow([f"clip{index:04d}.wav", *synthetic_labels(params),
                             f"spk{index % 8}"])
    return folder


def distill_step(args: argparse.Namespace, work: Path, timeout: float, env: dict) -> dict:
    from ser_pipeline.ingest import ingest as ingest_corpus
    from ser_pipeline.label import label_lake
    from ser_pipeline.lake import Lake
    from ser_pipeline.teacher import init_teacher

    sizes = SIZES[args.kind]["distill"]
    deadline = time.monotonic() + timeout
    corpus = write_corpus(work / "corpus", clips=sizes["clips"], seconds=sizes["seconds"])
    teacher = f"hf:{init_teacher(work / 'teacher', size='tiny', seed=1)}"
    lake, registry = str(work / "lake"), str(work / "registry")
    ser = [sys.executable, "-c", "from ser_pipeline.cli import main; main()"]
    log = work / "distill.log"
    timings = {}

    def call(name: str, command: list[str]) -> dict:
        started = time.monotonic()
        output = run(command, log=log, timeout=deadline - time.monotonic(), env=env)
        timings[name] = round(time.monotonic() - started, 2)
        return last_json(output)

    # Ingest and label in this process (what `ser ingest/label --engine local` call): two
    # fewer interpreters to start. The teacher runs on the device here, as
    # `ser label --device` runs it.
    started = time.monotonic()
    ingest = ingest_corpus(Lake.open(lake), str(corpus), corpus="gpu-bench", recipe="csv")
    timings["ingest"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    label = label_lake(Lake.open(lake), teacher=teacher, device=args.device,
                       batch_size=sizes["label_batch"])
    timings["label"] = round(time.monotonic() - started, 2)
    students = [part for student in sizes["students"] for part in ("--student", student)]
    summary = call("distill", [
        *ser, "distill", str(corpus), "--corpus", "gpu-bench", "--recipe", "csv",
        "--teacher", teacher, *students, "--max-steps", str(sizes["max_steps"]),
        "--train-device", args.device, "--min-ccc", "-1", "--name", "gpu",
        "--lake", lake, "--registry", registry, "--db", str(work / "ser.duckdb"),
        "--report-html", "", "--demo-dir", str(work / "demo"), "--json"])
    stages = summary["stages"]
    published = {student: {k: outcome.get(k) for k in ("published", "version", "reason",
                                                          "int8_bytes", "quantization",
                                                          "int8_withheld")}
                 for student, outcome in summary["published"].items()}
    return {
        "clips": sizes["clips"], "teacher": "tiny wav2vec2 (random weights)",
        "ingested": ingest.get("ingested"),
        "label": {k: getattr(label, k) for k in ("clips_labeled", "audio_seconds",
                                                 "audio_seconds_per_second", "device")},
        "distill_label_stage_clips": stages["label"]["clips_labeled"],
        "trained": len(stages["train"].get("runs", [])),
        "train_runs": [{k: r.get(k) for k in ("student", "run_id", "steps", "status",
                                              "device", "clips_per_s")}
                       for r in stages["train"].get("runs", [])],
        "metrics_rows_written": stages["evaluate"]["metrics_rows_written"],
        "published": published, "seconds": timings,
    }


def device_summary(device: str) -> dict:
    import torch

    info = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
            "host": platform.node(), "cpu_count": os.cpu_count()}
    if device.startswith("cuda"):
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    else:
        from ser_pipeline.cpu import cpu_info

        cpu = cpu_info()
        info["device_name"] = f"cpu: {cpu.kind} ({cpu.model})"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (smoke sizes)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "gpu.json"))
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="wall-clock budget for all steps (default 8 min)")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"comma list of steps to run (default {','.join(STEPS)})")
    parser.add_argument("--work", help="work folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    args.kind = "cuda" if args.device.startswith("cuda") else "cpu"
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {unknown}: choose from {', '.join(STEPS)}")
    import torch

    if args.kind == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device} but torch {torch.__version__} sees no CUDA GPU; "
              "run on the GPU host, or use --device cpu for a smoke run", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="ser-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1", "SER_PROGRESS": "0"}
    started = time.monotonic()
    results = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "budget_s": args.budget_s,
               "work": str(work), **device_summary(args.device), "steps": {}}
    functions = {"teacher": teacher_step, "train": train_step, "distill": distill_step}
    for index, step in enumerate(steps):
        left = args.budget_s - (time.monotonic() - started)
        reserved = sum(SHARES[s] for s in steps[index + 1:]) * args.budget_s
        timeout = left - reserved
        print(f"[gpu bench] {step}: up to {timeout:.0f} s", file=sys.stderr, flush=True)
        step_started = time.monotonic()
        try:
            if timeout < 5:
                raise StepError("no time left in the budget")
            record = {"status": "ok", **functions[step](args, work, timeout, env)}
        except (StepError, KeyError, ValueError) as error:
            record = {"status": "failed", "error": str(error)[-2000:]}
        record["wall_s"] = round(time.monotonic() - step_started, 1)
        results["steps"][step] = record
        print(f"[gpu bench] {step}: {record['status']} in {record['wall_s']} s",
              file=sys.stderr, flush=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["passed"] = all(r["status"] == "ok" for r in results["steps"].values())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "steps"}, indent=2))
    print(f"results: {out}", file=sys.stderr)
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
