"""GPU labeling throughput, end to end from the Parquet lake (issue 9.3).

Reads ``audio/*.parquet`` with pyarrow (record batches, never the whole table), decodes
FLAC with soundfile in a pool of decode workers that runs ahead of the GPU, sorts each
read-ahead window by duration, cuts long clips into 10 s windows, copies batches through
pinned memory (non-blocking) and runs the large-size teacher under bf16/fp16 autocast.
It sweeps precisions and batch sizes and prints audio-seconds per second for each.

Modes:

* default: also runs the real ``flows/label.py:label_flow`` on the lake for comparison
  (needs the whole ser-pipeline environment: Prefect, etc.).
* ``--no-prefect``: needs only torch, transformers, pyarrow, soundfile and soxr, so a copy
  of the repository runs on a bare GPU host. The model code is loaded from
  ``ser_pipeline/teacher/model.py`` by path (no other project imports).

Examples::

    python bench/teacher_gpu.py --no-prefect                          # H100: large teacher
    python bench/teacher_gpu.py --no-prefect --precisions bf16,fp16 --batch-sizes 32,64,128
    python bench/teacher_gpu.py --no-prefect --device cpu --size tiny --clips 8 \\
        --precisions fp32 --batch-sizes 4                              # CPU smoke test
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import queue
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds other scripts (bench/onnx.py) that would shadow real packages
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
SAMPLE_RATE = 16_000
MIN_SAMPLES = 400


def load_model_module():
    """``ser_pipeline/teacher/model.py`` by path: torch + transformers only."""
    spec = importlib.util.spec_from_file_location(
        "ser_teacher_model", ROOT / "ser_pipeline" / "teacher" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- a synthetic lake (only when no --lake is given) ----------------------------------------
def synthetic_lake(folder: Path, *, clips: int, seed: int, min_s: float, max_s: float) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import soundfile as sf

    rng = np.random.default_rng(seed)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(clips):
        seconds = float(rng.uniform(min_s, max_s))
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = rng.uniform(90, 320)
        signal = sum(0.5 ** k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(6))
        signal = (0.3 * signal / np.abs(signal).max()
                  * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 8) * t)))
        buffer = io.BytesIO()
        sf.write(buffer, signal.astype(np.float32), SAMPLE_RATE, format="FLAC",
                 subtype="PCM_16")
        data = buffer.getvalue()
        rows.append({"audio_id": hashlib.sha256(data).hexdigest(),
                     "audio": {"bytes": data, "path": f"{index}.flac"}, "corpus": "gpu-bench",
                     "source_path": f"{index}.flac", "duration_s": seconds})
        if len(rows) == 256 or index == clips - 1:
            pq.write_table(pa.Table.from_pylist(rows), folder / "audio" / f"part-{index}.parquet")
            rows = []
    return folder


# -- reading and decoding (overlapped with the GPU) -----------------------------------------
def decode(data: bytes) -> np.ndarray:
    import soundfile as sf
    import soxr

    signal, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    if signal.ndim == 2:
        signal = signal.mean(axis=1)
    if rate != SAMPLE_RATE:
        signal = soxr.resample(signal, rate, SAMPLE_RATE).astype(np.float32)
    return signal


def stream_signals(lake: Path, *, workers: int, read_ahead: int):
    """Yield lists of ``(audio_id, signal)`` (read-ahead windows), decoding in a pool."""
    import pyarrow.parquet as pq

    parts = sorted((lake / "audio").glob("*.parquet"))
    if not parts:
        raise SystemExit(f"error: no audio/*.parquet under {lake}")
    pool = ThreadPoolExecutor(max_workers=workers)  # soundfile releases the GIL
    pending = []
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(columns=["audio_id", "audio"],
                                                      batch_size=64):
            ids = batch.column("audio_id").to_pylist()
            datas = [a["bytes"] for a in batch.column("audio").to_pylist()]
            # pool.map decodes ahead while the previous window is on the GPU
            pending.extend(zip(ids, pool.map(decode, datas), strict=True))
            if len(pending) >= read_ahead:
                yield [(a, s) for a, s in pending]
                pending = []
    if pending:
        yield [(a, s) for a, s in pending]
    pool.shutdown()


def windows(signal: np.ndarray, window: int, hop: int) -> list[tuple[int, int]]:
    if signal.size <= window:
        return [(0, signal.size)]
    bounds, start = [], 0
    while True:
        end = min(start + window, signal.size)
        bounds.append((start, end))
        if end >= signal.size:
            break
        start += hop
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < MIN_SAMPLES:
        bounds.pop()
        bounds[-1] = (bounds[-1][0], signal.size)
    return bounds


def run_config(model, lake: Path, *, device: str, precision: str, batch_size: int,
               batch_seconds: float, workers: int, read_ahead: int, window_s: float,
               overlap_s: float) -> dict:
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    on_cuda = device.startswith("cuda")
    window = int(window_s * SAMPLE_RATE)
    hop = window - int(overlap_s * SAMPLE_RATE)
    budget = batch_seconds * SAMPLE_RATE
    outputs: dict[str, np.ndarray] = {}
    audio_seconds = 0.0
    batches = 0
    ready: queue.Queue = queue.Queue(maxsize=4)

    def produce() -> None:  # reading + decoding + batching run ahead of the GPU
        try:
            for chunk in stream_signals(lake, workers=workers, read_ahead=read_ahead):
                pieces = []
                for audio_id, signal in chunk:
                    if signal.size < MIN_SAMPLES or not np.isfinite(signal).all():
                        continue
                    bounds = windows(signal, window, hop)
                    for start, end in bounds:
                        pieces.append((audio_id, signal[start:end], signal.size, len(bounds)))
                pieces.sort(key=lambda p: p[1].size)
                current: list = []
                for piece in pieces:
                    if current and (len(current) >= batch_size
                                    or piece[1].size * (len(current) + 1) > budget):
                        ready.put(pack(current))
                        current = []
                    current.append(piece)
                if current:
                    ready.put(pack(current))
        finally:
            ready.put(None)

    def pack(pieces):
        longest = max(p[1].size for p in pieces)
        values = torch.zeros(len(pieces), longest, pin_memory=on_cuda)
        mask = torch.zeros(len(pieces), longest, dtype=torch.long, pin_memory=on_cuda)
        for row, (_, piece, _, _) in enumerate(pieces):
            values[row, :piece.size] = torch.from_numpy(piece)
            mask[row, :piece.size] = 1
        return [(p[0], p[1].size, p[2], p[3]) for p in pieces], values, mask

    sums: dict[str, np.ndarray] = {}
    weights: dict[str, float] = {}
    seen: dict[str, int] = {}
    if on_cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    with torch.inference_mode():
        while (item := ready.get()) is not None:
            meta, values, mask = item
            values = values.to(device, non_blocking=True)
            mask = mask.to(device, non_blocking=True)
            with torch.autocast(device_type="cuda" if on_cuda else "cpu", dtype=dtype,
                                enabled=dtype is not None):
                logits = model(values, mask if len(meta) > 1 else None)
            logits = logits.float().cpu().numpy()
            batches += 1
            for (audio_id, length, total, n_windows), row in zip(meta, logits, strict=True):
                sums[audio_id] = sums.get(audio_id, 0) + row * length  # duration-weighted
                weights[audio_id] = weights.get(audio_id, 0) + length
                seen[audio_id] = seen.get(audio_id, 0) + 1
                if seen[audio_id] == n_windows:
                    audio_seconds += total / SAMPLE_RATE
    if on_cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    producer.join()
    for audio_id in sums:
        outputs[audio_id] = sums[audio_id] / weights[audio_id]
    return {"precision": precision, "batch_size": batch_size, "decode_workers": workers,
            "clips": len(outputs), "audio_seconds": round(audio_seconds, 1),
            "seconds": round(elapsed, 3), "batches": batches,
            "audio_s_per_s": round(audio_seconds / elapsed, 1) if elapsed else 0.0,
            "outputs": outputs}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="GPU labeling throughput from the lake.")
    parser.add_argument("--lake", help="local lake folder (default: a synthetic one)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="large", choices=["tiny", "large"])
    parser.add_argument("--arch", default="wav2vec2", choices=["wav2vec2", "wavlm"])
    parser.add_argument("--teacher", help="model folder (save_pretrained) instead of random")
    parser.add_argument("--clips", type=int, default=2000, help="synthetic lake size")
    parser.add_argument("--min-s", type=float, default=2.0)
    parser.add_argument("--max-s", type=float, default=12.0)
    parser.add_argument("--precisions", default="bf16,fp16")
    parser.add_argument("--batch-sizes", default="32,64,128")
    parser.add_argument("--batch-seconds", type=float, default=600.0)
    parser.add_argument("--decode-workers", type=int, default=min(8, os.cpu_count() or 2))
    parser.add_argument("--read-ahead", type=int, default=512)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--overlap-s", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-prefect", action="store_true",
                        help="standalone: torch, transformers, pyarrow, soundfile, soxr only")
    parser.add_argument("--out", help="write the JSON results here too")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU visible to torch; use --device cpu for a smoke run")
    models = load_model_module()
    if args.teacher:
        config = json.loads((Path(args.teacher) / "config.json").read_text())
        model = models.MODEL_CLASSES[config["model_type"]].from_pretrained(args.teacher)
    else:
        torch.manual_seed(0)
        model = models.MODEL_CLASSES[args.arch](models.build_config(args.arch, args.size))
    model = model.eval().to(args.device)
    work = Path(tempfile.mkdtemp(prefix="ser-gpu-bench-"))
    lake = Path(args.lake) if args.lake else synthetic_lake(
        work / "lake", clips=args.clips, seed=0, min_s=args.min_s, max_s=args.max_s)
    device_name = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
                   else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)")
    results = {"device": device_name, "torch": torch.__version__, "lake": str(lake),
               "params": sum(p.numel() for p in model.parameters()), "runs": []}
    # warm-up: kernels, autotuning and the allocator, outside the timed runs
    with torch.inference_mode():
        model(torch.zeros(2, SAMPLE_RATE, device=args.device))
    reference = None
    for precision in args.precisions.split(","):
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            run = run_config(model, lake, device=args.device, precision=precision,
                             batch_size=batch_size, batch_seconds=args.batch_seconds,
                             workers=args.decode_workers, read_ahead=args.read_ahead,
                             window_s=args.window_s, overlap_s=args.overlap_s)
            outputs = run.pop("outputs")
            if reference is None:
                reference = outputs
            else:  # same clips, same weights: precision changes must not move the labels
                diffs = [np.abs(outputs[k] - reference[k]).max() for k in reference]
                run["max_abs_diff_vs_first"] = float(max(diffs))
            results["runs"].append(run)
            print(json.dumps(run), file=sys.stderr, flush=True)
    results["best_audio_s_per_s"] = max(r["audio_s_per_s"] for r in results["runs"])
    if not args.no_prefect:
        results["prefect_flow"] = run_flow(args, lake, model, work)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return results


def run_flow(args, lake: Path, model, work: Path) -> dict:
    """The real label flow on the same lake (needs the full ser-pipeline environment)."""
    sys.path.insert(0, str(ROOT))
    from flows.label import label_flow

    folder = Path(args.teacher) if args.teacher else work / "teacher"
    if not args.teacher:
        model.config.ser_random = True
        model.config.ser_name = f"{args.arch}-{args.size}-random"
        model.to("cpu").save_pretrained(str(folder))
    summary = label_flow(teacher=f"hf:{folder}", lake=str(lake), device=args.device,
                         precision=args.precisions.split(",")[0], threads=args.threads,
                         batch_size=int(args.batch_sizes.split(",")[0]),
                         batch_seconds=args.batch_seconds, shard_size=256)
    return {k: summary[k] for k in ("clips_labeled", "audio_seconds", "wall_s",
                                    "audio_seconds_per_second")}


if __name__ == "__main__":
    main()
