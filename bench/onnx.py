"""ONNX benchmark: every student exported to fp32 + int8 and measured on one thread.

For each student (random-init weights with a ridge-fitted head, so outputs vary with the
input and the int8 parity check means something): parameters, fp32/int8 size, ms per 5 s
clip on one ONNX Runtime thread (median), added peak RSS (fresh subprocess), GFLOP/s
against one core's fp32 peak, int8 parity, and the same figures from the paper.

Ratios are against baselines measured in the same run: int8 / fp32 latency (target <= 0.8
for wav2small), ours vs the paper's ms, and added RSS vs an ONNX Runtime floor (a trivial
one-op model). The CPU kind (AVX2-only or VNNI) is printed first: int8 speed depends on it.

    .venv/bin/python bench/onnx.py [--students wav2small,...] [--repeats 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder is sys.path[0], and this file is named onnx.py:
# drop that entry so `import onnx` finds the package, not this benchmark.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fitted import fit_head  # noqa: E402
from lakes import synthetic_labels, synthetic_params, tone  # noqa: E402

from ser_pipeline.cpu import CpuPeak, cpu_peak_gflops  # noqa: E402
from ser_pipeline.export import export_model  # noqa: E402
from ser_pipeline.onnx_model import measure  # noqa: E402
from ser_pipeline.students import build_student, count_parameters  # noqa: E402

STUDENTS = ["wav2small", "wav2small-72k", "mobilenetv4-s", "mobilenetv4-m", "mobilenetv3-s",
            "mobilenetv3-l"]
#: The paper's figures (None where it gives none): params, int8 bytes, ms per 5 s, RAM MB.
PAPER = {
    "wav2small": (72_000, 120_000, 9.0, 9.0),
    "wav2small-72k": (72_000, 120_000, 9.0, 9.0),
    "mobilenetv4-s": (3_120_000, None, 5.0, 36.0),
    "mobilenetv3-s": (None, None, 11.0, None),
}


def clips(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    signals, labels = [], []
    for index in range(n):
        params = synthetic_params(index, seed)
        signals.append(tone(**params, seconds=float(rng.uniform(1.5, 3.0)), seed=seed + index))
        labels.append(synthetic_labels(params))
    return signals, np.asarray(labels)


def ort_floor(work: Path, repeats: int) -> dict:
    """RSS/latency of a one-op model: what ONNX Runtime costs before any real model."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["signal"], ["logits"], keepdims=1)], "floor",
        [helper.make_tensor_value_info("signal", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])])
    path = work / "floor.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return measure(path, repeats=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default=",".join(STUDENTS))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    calibration, cal_labels = clips(24, seed=1)
    parity, _ = clips(24, seed=2)
    peak = cpu_peak_gflops()
    results = []
    with tempfile.TemporaryDirectory(prefix="ser-bench-onnx-") as tmp:
        floor = ort_floor(Path(tmp), args.repeats)
        for name in args.students.split(","):
            torch.manual_seed(0)
            model = build_student(name)
            fit_head(model, calibration, cal_labels)
            start = time.perf_counter()
            result = export_model(
                model, out_dir=Path(tmp) / name, calibration=calibration, parity_clips=parity,
                metadata={"student": name, "labels": '["arousal","dominance","valence"]',
                          "sample_rate": "16000"},
                check=False, repeats=args.repeats, measure_candidates=True)
            perf = result.performance
            tried = [c for c in result.quantization.candidates if c.perf]
            # int8 withheld: show the most faithful candidate's figures, marked FAIL
            shown = perf.int8 or (max(
                tried, key=lambda c: min(c.ccc_vs_fp32.values())).perf if tried else None)
            int8_file = result.files.get("model.int8.onnx")
            row = {
                "student": name, "params": count_parameters(model),
                "fp32_bytes": result.files["model.onnx"].bytes,
                "int8_bytes": int8_file.bytes if int8_file else None,
                "int8_method": result.quantization.chosen or "withheld",
                "fp32_ms": perf.fp32.latency_ms, "int8_ms": shown.latency_ms if shown else None,
                "fp32_rss_mb": perf.fp32.peak_rss_increase_mb,
                "int8_rss_mb": shown.peak_rss_increase_mb if shown else None,
                "gflop_per_clip": perf.gflop_per_clip,
                "fp32_gflops": perf.fp32.gflops_achieved,
                "fp32_fraction_of_peak": perf.fp32.fraction_of_fp32_peak,
                "parity_passed": result.parity.int8_passed,
                "int8_ccc_min": min((result.parity.int8_vs_fp32 or {"-": 0.0}).values()),
                "candidates": [{"method": c.method, "bytes": c.bytes, "passed": c.passed,
                                "ccc_vs_fp32": c.ccc_vs_fp32, "error": c.error,
                                "ms": c.perf.latency_ms if c.perf else None,
                                "saturation_risks": len(c.risks)}
                               for c in result.quantization.candidates],
                "machine": result.machine.model_dump(),
                "export_s": time.perf_counter() - start,
            }
            results.append(row)
            print(f"done {name}: {row['int8_method']}, int8 {_fmt(row['int8_ms'], '.1f')} ms "
                  f"vs fp32 {row['fp32_ms']:.1f} ms", file=sys.stderr)
    print_table(results, floor, peak)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": results, "ort_floor": floor,
                                               "cpu_peak": peak.model_dump()}, indent=2))


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict], floor: dict, peak: CpuPeak) -> None:
    machine = rows[0]["machine"] if rows else {}
    print(f"\nCPU: {machine.get('kind')} ({machine.get('model')}); ONNX Runtime "
          f"{__import__('onnxruntime').__version__}, one thread, 5 s clip; "
          f"fp32 peak {peak.peak_gflops:.1f} GFLOP/s ({peak.assumption}, "
          f"{peak.ghz:.2f} GHz); ORT floor: {floor['peak_rss_increase_mb']:.1f} MB added "
          f"RSS, {floor['latency_ms']:.3f} ms (one-op model, same run)\n")
    header = ("| student | params | fp32 KB | int8 KB | int8 recipe | fp32 ms | int8 ms | "
              "int8/fp32 latency | +RSS MB (int8) | +RSS over ORT floor | GFLOP/5s | "
              "fp32 GFLOP/s (% peak) | int8 CCC min | paper params | paper int8 KB | "
              "paper ms | paper RAM MB | int8 ms / paper ms |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in rows:
        paper = PAPER.get(row["student"], (None, None, None, None))
        ratio = row["int8_ms"] / row["fp32_ms"] if row["int8_ms"] else None
        target = " (target <= 0.8)" if row["student"] == "wav2small" else ""
        print("| " + " | ".join([
            row["student"], f"{row['params']:,}", f"{row['fp32_bytes'] / 1000:.1f}",
            _fmt(row["int8_bytes"] and row["int8_bytes"] / 1000, ".1f"), row["int8_method"],
            f"{row['fp32_ms']:.1f}", _fmt(row["int8_ms"], ".1f"),
            _fmt(ratio, ".2f") + target,
            _fmt(row["int8_rss_mb"], ".1f"),
            _fmt(row["int8_rss_mb"] and row["int8_rss_mb"] - floor["peak_rss_increase_mb"],
                 ".1f"),
            f"{row['gflop_per_clip']:.3f}",
            f"{row['fp32_gflops']:.1f} ({100 * row['fp32_fraction_of_peak']:.0f}%)",
            f"{row['int8_ccc_min']:.3f}" + ("" if row["parity_passed"] else " FAIL"),
            _fmt(paper[0], ","), _fmt(paper[1] and paper[1] / 1000, ".0f"), _fmt(paper[2], ".0f"),
            _fmt(paper[3], ".0f"),
            _fmt(paper[2] and row["int8_ms"] and row["int8_ms"] / paper[2], ".2f"),
        ]) + " |")
    print("\nint8 candidates (ms per 5 s clip, one thread, fresh process):")
    for row in rows:
        print(f"- {row['student']}: " + "; ".join(
            f"{c['method']} {_fmt(c['ms'], '.1f')} ms, CCC min "
            f"{_fmt(min((c['ccc_vs_fp32'] or {'-': None}).values(), default=None), '.3f')}"
            f"{'' if c['passed'] else ' (failed)'}"
            for c in row["candidates"]))


if __name__ == "__main__":
    main()
