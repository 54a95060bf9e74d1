"""Run every model of an ``arm64_check`` work folder on its saved inputs, one clip at a time.

The same code runs on both sides of the comparison: on the host for the x86 reference
(imported by ``bench/arm64_check.py``) and inside the arm64 root under qemu, where only
numpy and onnxruntime are installed. So this file imports nothing else.

    python arm64_runner.py WORK --cpu neoverse-n1

reads ``WORK/plan.json`` and ``WORK/inputs.npz`` and writes
``WORK/runs/<cpu>/<model>/<precision>.npy`` (``[clips, 3]`` float32) and
``WORK/runs/<cpu>/info.json`` (machine, ONNX Runtime version, CPU features, seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

#: Bits of the aarch64 AT_HWCAP / AT_HWCAP2 words (linux/arch/arm64/include/uapi/asm/hwcap.h)
#: that decide ONNX Runtime's int8 GEMM kernels.
_HWCAP_BITS = {"asimd": 1, "asimddp": 20, "sve": 22}
_HWCAP2_BITS = {"sve2": 1, "svei8mm": 9, "i8mm": 13, "bf16": 14, "sme": 23}
_AT_HWCAP, _AT_HWCAP2 = 16, 26


def safe_name(text: str) -> str:
    """A folder name for a CPU or model name: ``max,sve=off`` -> ``max_sve-off``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("=", "-")).strip("_") or "_"


def cpu_features() -> dict:
    """The aarch64 features the (emulated) CPU reports, read from ``/proc/self/auxv``.

    qemu user-mode answers this file itself with the emulated CPU's HWCAPs, which is what
    ONNX Runtime's kernel dispatch reads too. Empty on other machines.
    """
    if platform.machine().lower() not in ("aarch64", "arm64"):
        return {}
    try:
        words = np.frombuffer(Path("/proc/self/auxv").read_bytes(), dtype=np.uint64)
    except OSError:
        return {}
    entries = {int(key): int(value) for key, value in words.reshape(-1, 2)}
    hwcap, hwcap2 = entries.get(_AT_HWCAP, 0), entries.get(_AT_HWCAP2, 0)
    features = {name: bool(hwcap >> bit & 1) for name, bit in _HWCAP_BITS.items()}
    features.update({name: bool(hwcap2 >> bit & 1) for name, bit in _HWCAP2_BITS.items()})
    return features


def session(path: str | Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one thread: the same summation order on every run
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_model(path: str | Path, signals: list[np.ndarray]) -> np.ndarray:
    """Outputs ``[clips, 3]`` of one ONNX file, one clip per run, padded as ``ser predict``
    pads (to the model's ``min_samples``)."""
    model = session(path)
    meta = model.get_modelmeta().custom_metadata_map
    min_samples = int(meta.get("min_samples", 1600))
    input_name = model.get_inputs()[0].name
    rows = []
    for signal in signals:
        signal = np.asarray(signal, np.float32)
        if signal.size < min_samples:
            signal = np.pad(signal, (0, min_samples - signal.size))
        rows.append(model.run(None, {input_name: signal[None, :]})[0][0])
    return np.stack(rows).astype(np.float32)


def load_inputs(work: Path) -> list[np.ndarray]:
    with np.load(work / "inputs.npz") as saved:
        return [saved[key] for key in sorted(saved.files)]


def run_all(work: str | Path, *, cpu: str) -> dict:
    """Run every file in ``work/plan.json`` and write the outputs under ``runs/<cpu>``."""
    import onnxruntime as ort

    work = Path(work)
    plan = json.loads((work / "plan.json").read_text())
    signals = load_inputs(work)
    out = work / "runs" / safe_name(cpu)
    started = time.perf_counter()
    errors = {}
    for model in plan["models"]:
        for precision, relative in model["files"].items():
            target = out / safe_name(model["key"]) / f"{precision}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                np.save(target, run_model(work / relative, signals))
            except Exception as error:  # noqa: BLE001 - recorded; the checker reports it
                errors[f"{model['key']}/{precision}"] = f"{type(error).__name__}: {error}"
            print(f"{cpu}: {model['key']} {precision} done "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    info = {"cpu": cpu, "machine": platform.machine(), "onnxruntime": ort.__version__,
            "numpy": np.__version__, "qemu_cpu": os.environ.get("QEMU_CPU"),
            "features": cpu_features(), "seconds": round(time.perf_counter() - started, 1),
            "errors": errors}
    (out / "info.json").write_text(json.dumps(info, indent=2))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work", help="the work folder written by 'arm64_check.py prepare'")
    parser.add_argument("--cpu", required=True, help="name of this CPU in the results")
    args = parser.parse_args(argv)
    info = run_all(args.work, cpu=args.cpu)
    return 1 if info["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
