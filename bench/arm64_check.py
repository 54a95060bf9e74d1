"""ARM64 int8 numerics of exported models, against x86 and fp32 (``make check-arm64``).

``scripts/check_arm64.sh`` drives this in two halves around the emulated runs:

* ``prepare`` collects the models (the latest version of every model in ``$SER_REGISTRY``
  or ``./registry`` by default; or registry version folders, export folders, ``.onnx``
  files), writes a fixed, seeded set of input clips (``inputs.npz``: demo-style speech of
  varied lengths, loudness and background noise) and runs everything on this x86 host
  with ``bench/arm64_runner.py``, the same code the ARM side runs.
* ``compare`` reads the ARM outputs of each emulated CPU and checks, per model and CPU:

  - ARM int8 against x86 int8: max |diff| <= ``--max-arm-diff`` (default 0.02 on the
    0..1 scale, issue 21's absolute bound for int8 against fp32: a CPU may move the
    int8 outputs no further than quantisation itself is allowed to);
  - ARM int8 against fp32: CCC per dimension >= the exporter's bound (0.98), and max
    |diff| <= its absolute bound where the model's parity record has one;
  - ARM fp32 against x86 fp32: max |diff| <= 1e-3 (only summation order differs).

  It prints a Markdown table, writes ``arm64_check.json`` and exits 1 when a check fails.

qemu runs the instructions of ONNX Runtime's aarch64 kernels exactly, so the numbers are
the ARM kernels' numerics; their timings say nothing about ARM speed.

    python bench/arm64_check.py prepare --work DIR [MODEL ...] [--registry URL]
    python bench/arm64_check.py compare --work DIR    # also: --work bench/out/arm64
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Run as a script, this folder is sys.path[0] and holds bench/onnx.py: drop it so
# `import onnx` finds the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
ROOT = _HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

LABELS = ("arousal", "dominance", "valence")
SAMPLE_RATE = 16_000
#: The exporter's bound on CCC(int8, fp32) (``ser_pipeline.export.INT8_PARITY_MIN``).
DEFAULT_CCC_MIN = 0.98
#: ARM int8 may differ from x86 int8 by at most this (0..1 scale).
DEFAULT_MAX_ARM_DIFF = 0.02
#: fp32 on ARM and x86 differ only by summation order.
DEFAULT_MAX_FP32_DIFF = 1e-3
DEFAULT_CPUS = ("max", "neoverse-n1", "cortex-a53", "max,sve=off,sme=off")
#: Clip lengths in seconds (0.06 s is below MIN_SAMPLES: the padded path; 6 s is the
#: exporter's parity crop, MAX_CLIP_S) and peak gains in dB. Short enough for qemu: one
#: emulated second of audio costs seconds.
CLIP_SECONDS = (0.06, 0.4, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
GAINS_DB = (-40.0, -26.0, -12.0, 0.0)
SIGNAL_SEED = 2107


@functools.cache
def _runner():
    """bench/arm64_runner.py, the code the ARM side runs (loaded by path: bench/ is no
    package)."""
    spec = importlib.util.spec_from_file_location("arm64_runner", _HERE / "arm64_runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- inputs ---------------------------------------------------------------------------------

def make_signals(*, kind: str = "speech", count: int = 24, seed: int = SIGNAL_SEED
                 ) -> tuple[list[np.ndarray], list[dict]]:
    """A fixed set of clips: ``(signals, descriptions)``, deterministic in ``seed``.

    ``speech`` renders demo-pool-style espeak-ng speech (other voices, rates, background
    noise; the demo trains on seed 0, these use ``seed``) so the students' outputs vary as
    they do on real input; ``synthetic`` uses harmonic tones (no espeak-ng needed). Each
    of the ``count`` clips starts where its sound starts (leading silence skipped), gets a
    length from :data:`CLIP_SECONDS` (consecutive clips joined when one is too short) and
    a peak gain from :data:`GAINS_DB`. One clip of digital silence (1 s of zeros) comes
    last: the quiet end users do send, where the log-mel input is far below anything
    calibration saw.

    >>> signals, described = make_signals(kind="synthetic", count=3)
    >>> [(d["kind"], round(d["seconds"], 2)) for d in described]
    [('synthetic', 0.06), ('synthetic', 0.4), ('synthetic', 1.0), ('silence', 1.0)]
    """
    rng = np.random.default_rng(seed)
    bases = [_sound_start(_base_clip(kind, index, seed=seed)) for index in range(count + 1)]
    signals, described = [], []
    for index in range(count):
        seconds = CLIP_SECONDS[index % len(CLIP_SECONDS)]
        gain_db = GAINS_DB[int(rng.integers(len(GAINS_DB)))]
        pieces, size, offset = [], int(seconds * SAMPLE_RATE), index
        while sum(p.size for p in pieces) < size:
            pieces.append(bases[offset % len(bases)])
            offset += 1
        signal = np.concatenate(pieces)[:size]
        peak = float(np.abs(signal).max()) or 1.0
        signal = (signal / peak * 10 ** (gain_db / 20) * 0.99).astype(np.float32)
        signals.append(signal)
        described.append({"index": index, "kind": kind, "seconds": size / SAMPLE_RATE,
                          "peak_dbfs": gain_db})
    signals.append(np.zeros(SAMPLE_RATE, np.float32))
    described.append({"index": count, "kind": "silence", "seconds": 1.0, "peak_dbfs": None})
    return signals, described


def _sound_start(signal: np.ndarray) -> np.ndarray:
    """``signal`` from its first sample above 1 % of its peak (a 0.06 s crop of a clip's
    leading silence would be all zeros)."""
    loud = np.flatnonzero(np.abs(signal) > 0.01 * np.abs(signal).max())
    return signal[loud[0]:] if loud.size else signal


def _base_clip(kind: str, index: int, *, seed: int) -> np.ndarray:
    if kind == "speech":
        from ser_pipeline.demo import pool_clip_params, render_pool_clip

        return render_pool_clip(pool_clip_params(index, seed=seed), index=index, seed=seed)
    if kind == "synthetic":
        rng = np.random.default_rng([seed, index])
        t = np.arange(int(rng.uniform(1.0, 3.0) * SAMPLE_RATE)) / SAMPLE_RATE
        f0, brightness = rng.uniform(90, 320), rng.uniform(0.1, 0.9)
        harmonics = sum(brightness ** k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(8))
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 8) * t)
        return (harmonics * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    raise ValueError(f"unknown signal kind {kind!r}: use 'speech' or 'synthetic'")


# -- models ---------------------------------------------------------------------------------

@dataclass
class ModelFiles:
    """One model to check: its fp32 and/or int8 file and what its record says."""

    key: str
    source: str
    files: dict[str, str]
    recipe: str | None = None
    parity_bounds: dict[str, float] = field(default_factory=dict)


def find_models(paths: list[str], *, registry: str | None) -> list[ModelFiles]:
    """Models from explicit paths, else every latest version in the registry."""
    if paths:
        return [_from_path(Path(p)) for p in paths]
    from ser_pipeline.registry import Registry

    handle = Registry(registry)
    models = []
    for name in handle.names():
        if not handle.versions(name):
            continue
        folder, manifest = handle.fetch(name)
        model = _from_folder(folder, key=f"{name}@{manifest.get('version')}",
                             record=manifest)
        model.source = f"{handle.url} {name}@{manifest.get('version')}"
        models.append(model)
    if not models:
        raise SystemExit(f"error: no published models in registry {handle.url}; run "
                         "'make demo' first or pass model folders / .onnx files")
    return models


def _from_path(path: Path) -> ModelFiles:
    if path.is_dir():
        record = {}
        for name in ("manifest.json", "export.json"):
            if (path / name).is_file():
                record = json.loads((path / name).read_text())
                break
        return _from_folder(path, key=_folder_key(path), record=record)
    if path.suffix == ".onnx" and path.is_file():
        precision = "int8" if "int8" in path.name else "fp32"
        return ModelFiles(key=path.stem, source=str(path), files={precision: str(path)},
                          recipe=_metadata(path).get("quantization"))
    raise SystemExit(f"error: {path} is neither a model folder nor an .onnx file")


def _folder_key(path: Path) -> str:
    parts = path.resolve().parts
    if len(parts) >= 2 and parts[-1].isdigit():  # registry layout: models/<name>/<version>
        return f"{parts[-2]}@{parts[-1]}"
    return parts[-1]


def _from_folder(folder: Path, *, key: str, record: dict) -> ModelFiles:
    files = {precision: str(folder / name) for precision, name in
             (("fp32", "model.onnx"), ("int8", "model.int8.onnx")) if (folder / name).is_file()}
    if not files:
        raise SystemExit(f"error: {folder} holds neither model.onnx nor model.int8.onnx")
    recipe = _metadata(Path(files["int8"])).get("quantization") if "int8" in files else None
    return ModelFiles(key=key, source=str(folder), files=files, recipe=recipe,
                      parity_bounds=parity_bounds(record))


def _metadata(path: Path) -> dict[str, str]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in proto.metadata_props}


def parity_bounds(record: dict) -> dict[str, float]:
    """The int8 bounds a model was published under: ``{"ccc_min", "max_abs_diff"?}``.

    Read from the manifest's (or export.json's) ``parity.thresholds``; the CCC bound
    falls back to the exporter's constant. An absolute bound is used only where the
    record has one (a key with ``abs`` in its name).

    >>> parity_bounds({"parity": {"thresholds": {"int8_vs_fp32": 0.98,
    ...                                          "int8_max_abs_diff": 0.02}}})
    {'ccc_min': 0.98, 'max_abs_diff': 0.02}
    >>> parity_bounds({})
    {'ccc_min': 0.98}
    """
    thresholds = ((record.get("parity") or {}).get("thresholds") or {})
    bounds = {"ccc_min": float(thresholds.get("int8_vs_fp32", _exporter_ccc_min()))}
    absolute = [float(v) for k, v in thresholds.items()
                if "abs" in k and "int8" in k and isinstance(v, int | float)]
    if absolute:
        bounds["max_abs_diff"] = min(absolute)
    return bounds


def _exporter_ccc_min() -> float:
    try:
        from ser_pipeline.export import INT8_PARITY_MIN
    except ImportError:
        return DEFAULT_CCC_MIN
    return float(INT8_PARITY_MIN)


# -- comparison -----------------------------------------------------------------------------

def ccc(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """audmetric's concordance CC per label; NaN (a constant column) counts as 0.

    >>> x = np.array([[0.1, 0.2, 0.3], [0.5, 0.4, 0.1], [0.9, 0.7, 0.6]])
    >>> ccc(x, x)
    {'arousal': 1.0, 'dominance': 1.0, 'valence': 1.0}
    """
    import audmetric

    out = {}
    for index, label in enumerate(LABELS):
        value = float(audmetric.concordance_cc(truth[:, index].astype(np.float64),
                                               prediction[:, index].astype(np.float64)))
        out[label] = round(value, 6) if np.isfinite(value) else 0.0
    return out


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


@dataclass
class Tolerances:
    max_arm_diff: float = DEFAULT_MAX_ARM_DIFF
    max_fp32_diff: float = DEFAULT_MAX_FP32_DIFF


def compare_model(*, x86: dict[str, np.ndarray], arm: dict[str, np.ndarray],
                  bounds: dict[str, float], tolerances: Tolerances,
                  parity_clips: np.ndarray | None = None) -> dict:
    """Figures and verdict for one model on one CPU.

    ARM is compared with x86 on every clip. int8 is compared with fp32 on
    ``parity_clips`` only, as the exporter's parity is defined on speech: on digital
    silence the fp32 outputs leave the 0..1 scale (a log of zero power) and int8 clips
    them to the calibrated range, so their gap measures extrapolation, not
    quantisation. The other clips' int8 vs fp32 gap is reported as ``..._excluded_...``.

    Args:
        x86: ``{"fp32": [n, 3], "int8": [n, 3]}`` outputs on the host (either may be absent).
        arm: The same on the emulated CPU.
        bounds: :func:`parity_bounds` of the model.
        tolerances: ARM-vs-x86 limits.
        parity_clips: Boolean mask of the clips the int8 vs fp32 bounds apply to
            (default: all).

    Returns:
        ``{figures..., "failures": [why, ...], "passed": bool}``.

    >>> ref = np.linspace(0, 1, 30).reshape(10, 3)
    >>> row = compare_model(x86={"fp32": ref, "int8": ref + 0.001},
    ...                     arm={"fp32": ref, "int8": ref + 0.05},
    ...                     bounds={"ccc_min": 0.98}, tolerances=Tolerances())
    >>> row["passed"], row["failures"][0][:40]
    (False, 'ARM int8 differs from x86 int8 by 0.0490')
    """
    row: dict = {"failures": []}
    failures = row["failures"]
    if _arm_vs_x86(row, x86, arm, "int8", limit=tolerances.max_arm_diff, shown=".4f"):
        row["int8_arm_vs_x86_ccc"] = ccc(x86["int8"], arm["int8"])
    if "fp32" in x86 and "int8" in arm:
        used = np.ones(len(x86["fp32"]), bool) if parity_clips is None \
            else np.asarray(parity_clips, bool)
        fp32, arm8, x868 = x86["fp32"][used], arm["int8"][used], x86["int8"][used]
        row["int8_arm_vs_fp32_ccc"] = ccc(fp32, arm8)
        row["int8_arm_vs_fp32_max_abs_diff"] = max_abs_diff(arm8, fp32)
        row["int8_x86_vs_fp32_ccc"] = ccc(fp32, x868)
        row["int8_x86_vs_fp32_max_abs_diff"] = max_abs_diff(x868, fp32)
        if not used.all():
            row["int8_arm_vs_fp32_excluded_max_abs_diff"] = max_abs_diff(
                arm["int8"][~used], x86["fp32"][~used])
        low = {k: v for k, v in row["int8_arm_vs_fp32_ccc"].items() if v < bounds["ccc_min"]}
        if low:
            where = ("ARM only" if min(row["int8_x86_vs_fp32_ccc"].values()) >= bounds["ccc_min"]
                     else "x86 too: not ARM-specific")
            failures.append("ARM int8 vs fp32 CCC " + ", ".join(
                f"{k[0].upper()} {v:.4f}" for k, v in low.items())
                + f" < {bounds['ccc_min']} ({where})")
        limit = bounds.get("max_abs_diff")
        if limit is not None and row["int8_arm_vs_fp32_max_abs_diff"] > limit:
            failures.append(f"ARM int8 vs fp32 max |diff| "
                            f"{row['int8_arm_vs_fp32_max_abs_diff']:.4f} > {limit}")
    _arm_vs_x86(row, x86, arm, "fp32", limit=tolerances.max_fp32_diff, shown=".2e")
    row["passed"] = not failures
    return row


def _arm_vs_x86(row: dict, x86: dict, arm: dict, precision: str, *, limit: float,
                shown: str) -> bool:
    """The same model file's outputs on ARM and x86: their max |diff| into ``row``, and a
    failure when it exceeds ``limit`` or ARM gave none. True when both ran."""
    if precision not in x86:
        return False
    if precision not in arm:
        row["failures"].append(f"no ARM {precision} output (the emulated run failed)")
        return False
    key = f"{precision}_arm_vs_x86_max_abs_diff"
    row[key] = max_abs_diff(arm[precision], x86[precision])
    if row[key] > limit:
        row["failures"].append(f"ARM {precision} differs from x86 {precision} by "
                               f"{row[key]:{shown}} > {limit}")
    return True


def arm_spread(work: Path, plan: dict) -> dict[str, dict[str, float | None]]:
    """Per model and precision, the largest difference between any two emulated CPUs
    (0.0: every ARM kernel path gave the same numbers; None: fewer than two ran)."""
    runner = _runner()
    spread: dict[str, dict[str, float | None]] = {}
    for model in plan["models"]:
        for precision in model["files"]:
            found = [work / "runs" / runner.safe_name(cpu) / runner.safe_name(model["key"])
                     / f"{precision}.npy" for cpu in plan["cpus"]]
            outputs = [np.load(path) for path in found if path.is_file()]
            spread.setdefault(model["key"], {})[precision] = (
                max(max_abs_diff(a, outputs[0]) for a in outputs[1:])
                if len(outputs) > 1 else None)
    return spread


def kernel_path(features: dict) -> str:
    """ONNX Runtime's aarch64 int8 GEMM path for these CPU features (MLAS dispatch:
    i8mm -> smmla/ummla, dot product -> sdot/udot, else widening NEON multiplies).

    >>> kernel_path({"asimddp": True, "i8mm": False, "sve": False, "sme": False})
    'NEON sdot/udot'
    """
    if not features:
        return "unknown (no HWCAPs read)"
    if features.get("i8mm"):
        extra = " (SVE" + ("+SME" if features.get("sme") else "") + " present)" \
            if features.get("sve") else " (NEON)"
        return "smmla/ummla (i8mm)" + extra
    if features.get("asimddp"):
        return "NEON sdot/udot"
    return "plain NEON (no dot product)"


# -- the two halves -------------------------------------------------------------------------

def prepare(args: argparse.Namespace) -> int:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    models = find_models(args.models, registry=args.registry)
    if args.inputs:
        shutil.copyfile(args.inputs, work / "inputs.npz")
        with np.load(work / "inputs.npz") as saved:
            described = [{"index": i, "kind": "file", "seconds": saved[k].size / SAMPLE_RATE}
                         for i, k in enumerate(sorted(saved.files))]
    else:
        signals, described = make_signals(kind=args.signals, count=args.clips, seed=args.seed)
        np.savez(work / "inputs.npz", **{f"clip{i:03d}": s for i, s in enumerate(signals)})
    planned = []
    for model in models:
        folder = work / "models" / _runner().safe_name(model.key)
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for precision, path in model.files.items():
            shutil.copyfile(path, folder / Path(path).name)
            files[precision] = str((folder / Path(path).name).relative_to(work))
        planned.append({**asdict(model), "files": files, "source_files": model.files})
    plan = {"models": planned, "inputs": described,
            "cpus": args.cpus.split() if args.cpus else list(DEFAULT_CPUS),
            "tolerances": asdict(Tolerances(args.max_arm_diff, args.max_fp32_diff)),
            "out": str(Path(args.out).resolve()), "signals": args.signals, "seed": args.seed}
    (work / "plan.json").write_text(json.dumps(plan, indent=2))
    print(f"{len(planned)} model(s), {len(described)} clips "
          f"({min(d['seconds'] for d in described):.2f}-"
          f"{max(d['seconds'] for d in described):.1f} s); running them on this x86 host",
          file=sys.stderr)
    info = _runner().run_all(work, cpu="x86-64")
    return 1 if info["errors"] else 0


def compare(args: argparse.Namespace) -> int:
    from ser_pipeline.cpu import cpu_info

    runner = _runner()
    work = Path(args.work)
    plan = json.loads((work / "plan.json").read_text())
    tolerances = Tolerances(**plan["tolerances"])
    x86_dir = work / "runs" / "x86-64"
    x86_info = json.loads((x86_dir / "info.json").read_text())
    rows, arm_info = [], {}
    parity_clips = np.array([d["kind"] != "silence" for d in plan["inputs"]])
    for cpu in plan["cpus"]:
        cpu_dir = work / "runs" / runner.safe_name(cpu)
        info = json.loads((cpu_dir / "info.json").read_text()) \
            if (cpu_dir / "info.json").is_file() else {"errors": {"run": "no output"}}
        info["kernel_path"] = kernel_path(info.get("features") or {})
        arm_info[cpu] = info
        for model in plan["models"]:
            def outputs(base: Path, model: dict = model) -> dict[str, np.ndarray]:
                folder = base / runner.safe_name(model["key"])
                return {p: np.load(folder / f"{p}.npy") for p in model["files"]
                        if (folder / f"{p}.npy").is_file()}

            row = compare_model(x86=outputs(x86_dir), arm=outputs(cpu_dir),
                                bounds=model["parity_bounds"], tolerances=tolerances,
                                parity_clips=parity_clips)
            rows.append({"model": model["key"], "recipe": model["recipe"], "cpu": cpu,
                         "kernel_path": info["kernel_path"], **row})
    spread = arm_spread(work, plan)
    result = {
        "passed": all(r["passed"] for r in rows) and bool(rows),
        "note": "qemu user-mode runs ONNX Runtime's aarch64 kernels exactly: these are "
                "their numerics, not their speed",
        "x86": {**cpu_info().model_dump(), "onnxruntime": x86_info["onnxruntime"]},
        "arm": arm_info, "tolerances": asdict(tolerances),
        "inputs": {"clips": len(plan["inputs"]), "seed": plan["seed"],
                   "kinds": {kind: sum(d["kind"] == kind for d in plan["inputs"])
                             for kind in sorted({d["kind"] for d in plan["inputs"]})},
                   "seconds": [d["seconds"] for d in plan["inputs"]]},
        "models": [{k: m[k] for k in ("key", "source", "recipe", "parity_bounds")}
                   for m in plan["models"]],
        "rows": rows, "arm_spread": spread,
    }
    out = Path(plan["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "arm64_check.json").write_text(json.dumps(result, indent=2))
    if out.resolve() != work.resolve():  # keep what `compare --work OUT` needs again
        for name in ("inputs.npz", "plan.json"):
            shutil.copyfile(work / name, out / name)
        shutil.rmtree(out / "runs", ignore_errors=True)
        shutil.copytree(work / "runs", out / "runs")  # every output, for a closer look
    print(report(result))
    print(f"\nresults: {out / 'arm64_check.json'} (inputs.npz and runs/ beside it)")
    return 0 if result["passed"] else 1


def report(result: dict) -> str:
    """The Markdown summary ``compare`` prints (also pasteable into BENCHMARKS.md)."""
    lines = [f"x86 host: {result['x86']['kind']} ({result['x86']['model']}), "
             f"onnxruntime {result['x86']['onnxruntime']}; clips: "
             + ", ".join(f"{n} {k}" for k, n in result["inputs"]["kinds"].items())
             + f"; {result['note']}.", "",
             "| emulated CPU | HWCAPs | int8 kernel path | ARM seconds |", "|---|---|---|---|"]
    for cpu, info in result["arm"].items():
        features = ", ".join(k for k, v in (info.get("features") or {}).items() if v) or "-"
        lines.append(f"| {cpu} | {features} | {info['kernel_path']} | "
                     f"{info.get('seconds', '-')} |")
    lines += ["", "| model | recipe | CPU | int8 ARM vs x86 max abs diff | CCC min | "
              "int8 ARM vs fp32 CCC A / D / V | max abs diff | x86 int8 vs fp32 CCC min | "
              "silence: int8 vs fp32 max abs diff | fp32 ARM vs x86 max abs diff | verdict |",
              "|" + "---|" * 11]

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for row in result["rows"]:
        vs_fp32 = row.get("int8_arm_vs_fp32_ccc")
        lines.append(" | ".join([
            f"| {row['model']}", str(row["recipe"] or "-"), row["cpu"],
            fmt(row.get("int8_arm_vs_x86_max_abs_diff"), ".1e"),
            fmt(min(row["int8_arm_vs_x86_ccc"].values()) if "int8_arm_vs_x86_ccc" in row
                else None, ".4f"),
            " / ".join(f"{v:.4f}" for v in vs_fp32.values()) if vs_fp32 else "-",
            fmt(row.get("int8_arm_vs_fp32_max_abs_diff"), ".4f"),
            fmt(min(row["int8_x86_vs_fp32_ccc"].values()) if "int8_x86_vs_fp32_ccc" in row
                else None, ".4f"),
            fmt(row.get("int8_arm_vs_fp32_excluded_max_abs_diff"), ".3f"),
            fmt(row.get("fp32_arm_vs_x86_max_abs_diff"), ".1e"),
            "pass" if row["passed"] else "FAIL: " + "; ".join(row["failures"])]) + " |")
    lines.append("")
    for key, precisions in result.get("arm_spread", {}).items():
        lines.append(f"{key}: largest difference between emulated CPUs: " + ", ".join(
            f"{p} {fmt(v, '.1e')}" for p, v in precisions.items()))
    tolerances = result["tolerances"]
    lines += ["", f"Checks: ARM int8 vs x86 int8 max abs diff <= {tolerances['max_arm_diff']} "
              "(every clip); ARM int8 vs fp32 CCC per dimension (sound clips; digital silence "
              "is reported, not bounded) >= the exporter's bound "
              f"({', '.join(sorted({str(m['parity_bounds']) for m in result['models']}))}); "
              f"ARM fp32 vs x86 fp32 max abs diff <= {tolerances['max_fp32_diff']}. "
              + ("All passed." if result["passed"] else "FAILED.")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    first = commands.add_parser("prepare", help="collect models, write inputs, run on x86")
    first.add_argument("models", nargs="*",
                       help="model folders (registry version or export) or .onnx files; "
                            "default: every latest version in the registry")
    first.add_argument("--work", required=True, help="work folder (shared with the ARM root)")
    first.add_argument("--registry", default=None,
                       help="registry URL (default $SER_REGISTRY, else ./registry)")
    first.add_argument("--cpus", default=os.environ.get("SER_ARM64_CPUS"),
                       help="space-separated qemu CPU models the shell script will run")
    first.add_argument("--signals", default="speech", choices=["speech", "synthetic"])
    first.add_argument("--clips", type=int, default=24)
    first.add_argument("--seed", type=int, default=SIGNAL_SEED)
    first.add_argument("--inputs", help="an inputs.npz from an earlier run to reuse")
    first.add_argument("--max-arm-diff", type=float, default=DEFAULT_MAX_ARM_DIFF)
    first.add_argument("--max-fp32-diff", type=float, default=DEFAULT_MAX_FP32_DIFF)
    first.add_argument("--out", default=str(ROOT / "bench" / "out" / "arm64"),
                       help="where arm64_check.json and inputs.npz are written")
    second = commands.add_parser("compare", help="compare ARM outputs with x86 and fp32")
    second.add_argument("--work", required=True)
    args = parser.parse_args(argv)
    return prepare(args) if args.command == "prepare" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
