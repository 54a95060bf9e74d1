"""bench/arm64_check.py's comparison logic, on x86 alone (no qemu, no arm64 root).

The emulated runs of ``make check-arm64`` are replaced by runs of the same runner on this
host, under made-up CPU names; one CPU's int8 output is then moved the way a faulty ARM
kernel would move it, and the checker must fail on exactly that CPU.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check = _load("arm64_check")


def _toy_model(folder: Path) -> Path:
    """A registry-style version folder: an fp32 graph whose outputs follow loudness and
    peakiness, its dynamic-int8 twin, and a manifest with parity thresholds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 2.0, (3, 16)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (16, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Abs", ["signal"], ["magnitude"]),
        helper.make_node("ReduceMean", ["magnitude"], ["mean_abs"], keepdims=1, axes=[1]),
        helper.make_node("ReduceMax", ["magnitude"], ["max_abs"], keepdims=1, axes=[1]),
        helper.make_node("Mul", ["signal", "signal"], ["power"]),
        helper.make_node("ReduceMean", ["power"], ["mean_power"], keepdims=1, axes=[1]),
        helper.make_node("Sqrt", ["mean_power"], ["rms"]),
        helper.make_node("Concat", ["mean_abs", "max_abs", "rms"], ["features"], axis=1),
        helper.make_node("Mul", ["features", "gain"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "w1"], ["hidden_pre"]),
        helper.make_node("Tanh", ["hidden_pre"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "w2"], ["pre"]),
        helper.make_node("Sigmoid", ["pre"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "toy",
        [helper.make_tensor_value_info("signal", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
         numpy_helper.from_array(np.array([8.0], np.float32), "gain")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"min_samples": "1600", "labels":
                                   '["arousal", "dominance", "valence"]'})
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    quantize_dynamic(str(folder / "model.onnx"), str(folder / "model.int8.onnx"),
                     weight_type=QuantType.QUInt8)
    (folder / "manifest.json").write_text(json.dumps(
        {"version": 1, "parity": {"thresholds": {"int8_vs_fp32": 0.98}}}))
    return folder


def test_compare_model_fails_on_arm_departure_low_parity_and_fp32_mismatch() -> None:
    rng = np.random.default_rng(1)
    fp32 = rng.uniform(0.2, 0.8, (20, 3))
    int8 = fp32 + rng.normal(0, 0.002, fp32.shape)
    bounds, tolerances = {"ccc_min": 0.98}, check.Tolerances()

    same = check.compare_model(x86={"fp32": fp32, "int8": int8},
                               arm={"fp32": fp32 + 1e-7, "int8": int8.copy()},
                               bounds=bounds, tolerances=tolerances)
    assert same["passed"] and same["failures"] == []
    assert same["int8_arm_vs_x86_max_abs_diff"] == 0.0
    assert min(same["int8_arm_vs_fp32_ccc"].values()) > 0.99

    shifted = int8.copy()
    shifted[3, 1] += 0.03  # one clip, one dimension: a kernel that saturated once
    moved = check.compare_model(x86={"fp32": fp32, "int8": int8},
                                arm={"fp32": fp32, "int8": shifted},
                                bounds=bounds, tolerances=tolerances)
    assert not moved["passed"]
    assert moved["int8_arm_vs_x86_max_abs_diff"] == pytest.approx(0.03)
    assert len(moved["failures"]) == 1 and "x86 int8 by 0.0300" in moved["failures"][0]

    noisy = fp32.copy()
    noisy[:, 2] = rng.uniform(0.2, 0.8, 20)  # valence no longer follows fp32, on ARM only
    parity = check.compare_model(x86={"fp32": fp32, "int8": int8},
                                 arm={"fp32": fp32, "int8": noisy},
                                 bounds=bounds, tolerances=check.Tolerances(max_arm_diff=1.0))
    assert not parity["passed"]
    assert parity["int8_arm_vs_fp32_ccc"]["valence"] < 0.98
    assert parity["failures"] == [parity["failures"][0]]
    assert "CCC V" in parity["failures"][0] and "(ARM only)" in parity["failures"][0]

    silence = np.arange(20) == 19  # one clip where int8 and fp32 part ways, on x86 too
    far_x86, far_arm = int8.copy(), int8.copy()
    far_x86[19] = far_arm[19] = fp32[19] + 0.7
    masked = check.compare_model(x86={"fp32": fp32, "int8": far_x86},
                                 arm={"fp32": fp32, "int8": far_arm},
                                 bounds=bounds, tolerances=tolerances, parity_clips=~silence)
    assert masked["passed"], masked["failures"]
    assert masked["int8_arm_vs_fp32_excluded_max_abs_diff"] == pytest.approx(0.7)
    unmasked = check.compare_model(x86={"fp32": fp32, "int8": far_x86},
                                   arm={"fp32": fp32, "int8": far_arm},
                                   bounds=bounds, tolerances=tolerances)
    assert not unmasked["passed"] and "(x86 too: not ARM-specific)" in unmasked["failures"][0]
    far_arm[19] += 0.03  # ARM against x86 is checked on the excluded clip as well
    moved_there = check.compare_model(x86={"fp32": fp32, "int8": far_x86},
                                      arm={"fp32": fp32, "int8": far_arm}, bounds=bounds,
                                      tolerances=tolerances, parity_clips=~silence)
    assert not moved_there["passed"] and "x86 int8 by 0.0300" in moved_there["failures"][0]

    absolute = check.compare_model(x86={"fp32": fp32, "int8": int8},
                                   arm={"fp32": fp32, "int8": int8},
                                   bounds={"ccc_min": 0.98, "max_abs_diff": 0.001},
                                   tolerances=tolerances)
    assert not absolute["passed"] and "max |diff|" in absolute["failures"][0]

    fp32_off = check.compare_model(x86={"fp32": fp32}, arm={"fp32": fp32 + 0.01},
                                   bounds=bounds, tolerances=tolerances)
    assert not fp32_off["passed"] and "ARM fp32 differs" in fp32_off["failures"][0]

    missing = check.compare_model(x86={"fp32": fp32, "int8": int8}, arm={"fp32": fp32},
                                  bounds=bounds, tolerances=tolerances)
    assert not missing["passed"] and "no ARM int8 output" in missing["failures"][0]


def test_kernel_path_follows_the_cpu_features() -> None:
    assert check.kernel_path({"asimddp": True, "i8mm": True, "sve": True, "sme": True}) \
        == "smmla/ummla (i8mm) (SVE+SME present)"
    assert check.kernel_path({"asimddp": True, "i8mm": True, "sve": False}) \
        == "smmla/ummla (i8mm) (NEON)"
    assert check.kernel_path({"asimddp": True, "i8mm": False}) == "NEON sdot/udot"
    assert check.kernel_path({"asimd": True, "asimddp": False}) == "plain NEON (no dot product)"


def test_signals_are_seeded_and_cover_lengths_and_loudness() -> None:
    first, described = check.make_signals(kind="synthetic", count=10, seed=5)
    again, _ = check.make_signals(kind="synthetic", count=10, seed=5)
    other, _ = check.make_signals(kind="synthetic", count=10, seed=6)
    assert len(first) == len(described) == 11
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    *sounds, silence = first
    assert described[-1]["kind"] == "silence" and not silence.any() and silence.size == 16000
    sizes = [s.size for s in sounds]
    assert min(sizes) < 1600 < max(sizes)  # the padded path and long clips
    peaks = [round(20 * np.log10(np.abs(s).max() / 0.99)) for s in sounds]
    assert peaks == [d["peak_dbfs"] for d in described[:-1]]
    assert len(set(peaks)) >= 3 and set(peaks) <= {-40, -26, -12, 0}


def test_prepare_run_compare_flags_only_the_cpu_whose_int8_moved(tmp_path: Path) -> None:
    model = _toy_model(tmp_path / "registry" / "models" / "toy" / "1")
    work, out = tmp_path / "work", tmp_path / "out"
    assert check.main(["prepare", "--work", str(work), str(model), "--signals", "synthetic",
                       "--clips", "12", "--cpus", "fake-a fake-b", "--out", str(out)]) == 0
    plan = json.loads((work / "plan.json").read_text())
    assert [m["key"] for m in plan["models"]] == ["toy@1"]
    assert plan["models"][0]["parity_bounds"] == {"ccc_min": 0.98}
    # the runner, as the arm64 root runs it: a separate interpreter, numpy + ORT only
    for cpu in ("fake-a", "fake-b"):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "arm64_runner.py"),
                               str(work), "--cpu", cpu], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    x86 = np.load(work / "runs" / "x86-64" / "toy_1" / "int8.npy")
    assert x86.shape == (13, 3) and np.ptp(x86, axis=0).min() > 0.01  # outputs vary
    assert np.array_equal(np.load(work / "runs" / "fake-a" / "toy_1" / "int8.npy"), x86)

    assert check.main(["compare", "--work", str(work)]) == 0
    passed = json.loads((out / "arm64_check.json").read_text())
    assert passed["passed"] is True and len(passed["rows"]) == 2
    assert passed["arm_spread"] == {"toy@1": {"fp32": 0.0, "int8": 0.0}}
    moved = work / "runs" / "fake-b" / "toy_1" / "int8.npy"
    np.save(moved, np.load(moved) + np.float32(0.05))
    assert check.main(["compare", "--work", str(work)]) == 1
    result = json.loads((out / "arm64_check.json").read_text())
    verdicts = {row["cpu"]: row["passed"] for row in result["rows"]}
    assert verdicts == {"fake-a": True, "fake-b": False} and result["passed"] is False
    failed = next(row for row in result["rows"] if row["cpu"] == "fake-b")
    assert failed["int8_arm_vs_x86_max_abs_diff"] == pytest.approx(0.05, abs=1e-6)
    assert result["arm_spread"]["toy@1"]["int8"] == pytest.approx(0.05, abs=1e-6)
    assert (out / "inputs.npz").is_file()
    assert np.array_equal(np.load(out / "runs" / "fake-b" / "toy_1" / "int8.npy"),
                          np.load(moved))
