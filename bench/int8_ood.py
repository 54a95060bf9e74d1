"""int8 against fp32 on audio no student trained on, and no export calibrated or checked on.

For each published student (default: the demo's, in ./registry), its fp32 file is
quantised twice with the recipe its int8 file shipped with:

- **baseline**: calibrated as exports did before: clean training clips of the training
  corpora only, min-max;
- **varied**: as exports do now (``ser_pipeline.export.run.export_run``): training clips
  of every corpus in the lake in turn, each with a seeded perturbed copy, min-max; and the
  same set cut to 2 s crops calibrated by min-max, percentile (99.999) and entropy, the
  methods measured against min-max (ONNX Runtime's histogram calibrators need one shape).

Each file then runs on an out-of-domain set: espeak-ng speech in voices, languages,
rates, pitches and lengths the demo never uses (several sentences, 6-14 s), plus the real
speech files under tests/data, each also under every perturbation of the robustness suite.
Printed per model and variant: min CCC(int8, fp32) over A/D/V, MAE, max |int8 - fp32|,
and the ratio of the varied file's max abs diff to the baseline's (same run). The bounds
are the exporter's: CCC >= 0.98 and max abs diff <= 0.02.

    .venv/bin/python bench/int8_ood.py [--registry registry] [--lake lake] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# Run as a script, this file's folder is sys.path[0]: drop it so `import onnx` finds the
# package, not bench/onnx.py.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402

from ser_pipeline.cpu import cpu_info  # noqa: E402
from ser_pipeline.demo import SENTENCES, ClipParams, synthesize  # noqa: E402
from ser_pipeline.demo.audio import ESPEAK_RATE  # noqa: E402
from ser_pipeline.export.int8 import quantize_candidates  # noqa: E402
from ser_pipeline.export.lake import (  # noqa: E402
    CALIBRATION_PERTURBATIONS,
    clips_across_corpora,
    lake_clips,
    with_perturbed,
)
from ser_pipeline.export.parity import (  # noqa: E402
    INT8_MAX_ABS_DIFF,
    INT8_PARITY_MIN,
    int8_verdict,
    onnx_predict,
)
from ser_pipeline.lake import Lake  # noqa: E402
from ser_pipeline.perturb import PERTURBATIONS, perturb  # noqa: E402
from ser_pipeline.quantize import STUDENT_RECIPES  # noqa: E402
from ser_pipeline.registry import Registry  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
#: Voices of another kind than the demo's: languages outside the pool, variants no demo
#: voice uses (a whisper among them), rates and pitches beyond the pool's ranges.
OOD_VOICES = ("pt+whisper", "pl+Andy", "ru+Annie", "sv+Michael", "en-us+Linda",
              "cs+Jacky", "fi+Gene", "ro+Max")


def ood_clips(n: int = 16, seed: int = 7) -> list[np.ndarray]:
    """``n`` espeak-ng clips in another style, plus the real speech under tests/data."""
    rng = np.random.default_rng(seed)
    signals = []
    for index in range(n):
        sentence = " ".join(SENTENCES[int(k)] for k in rng.choice(len(SENTENCES), 3, False))
        params = ClipParams(voice=OOD_VOICES[index % len(OOD_VOICES)],
                            rate=int(rng.choice([int(rng.integers(70, 100)),
                                                 int(rng.integers(290, 360))])),
                            pitch=int(rng.choice([int(rng.integers(0, 10)),
                                                  int(rng.integers(90, 100))])),
                            amplitude=int(rng.integers(20, 200)), gap=int(rng.integers(0, 20)),
                            sentence=sentence)
        speech = synthesize(params)
        signals.append(soxr.resample(speech, ESPEAK_RATE, 16_000).astype(np.float32))
    for path in sorted(DATA.glob("*.*")):
        if path.suffix in {".wav", ".flac", ".ogg"} and "bad" not in path.name:
            try:
                signal, rate = sf.read(path, dtype="float32", always_2d=True)
            except Exception:  # noqa: BLE001 - broken fixtures are not speech
                continue
            mono = signal.mean(axis=1)
            if mono.size > rate // 4 and np.abs(mono).max() > 0.01:
                signals.append(soxr.resample(mono, rate, 16_000).astype(np.float32))
    return signals


def with_every_perturbation(signals: list[np.ndarray]) -> list[np.ndarray]:
    out = list(signals)
    for index, signal in enumerate(signals):
        out += [perturb(signal, name, seed=[11, index]) for name in PERTURBATIONS]
    return out


def figures(fp32: np.ndarray, int8: np.ndarray) -> dict:
    ccc, worst, ok = int8_verdict(fp32, int8)
    return {"min_ccc": round(min(ccc.values()), 4), "ccc": ccc,
            "mae": round(float(np.abs(int8 - fp32).mean()), 4),
            "max_abs_diff": round(worst, 4), "within_bounds": ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", default="registry")
    parser.add_argument("--lake", default="lake")
    parser.add_argument("--names", default="ser-wav2small,ser-mobilenetv3-s")
    parser.add_argument("--calibration-clips", type=int, default=32)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    machine = cpu_info()
    print(f"CPU: {machine.model} ({machine.kind})")
    lake = Lake.open(args.lake)
    registry = Registry(args.registry)
    clean = ood_clips()
    test_set = with_every_perturbation(clean)
    print(f"out-of-domain set: {len(clean)} clips ({sum(s.size for s in clean) / 16000:.0f} s)"
          f" x (clean + {len(PERTURBATIONS)} perturbations) = {len(test_set)}")
    results = {"machine": machine.model_dump(), "bounds": {
        "min_ccc": INT8_PARITY_MIN, "max_abs_diff": INT8_MAX_ABS_DIFF}, "models": {}}
    for name in args.names.split(","):
        folder, manifest = registry.fetch(name)
        # the shipped recipe; every candidate when int8 was withheld
        chosen = manifest.int8.recipe.name if manifest.int8.recipe else None
        recipes = [r for r in STUDENT_RECIPES if chosen in (None, r.name)]
        split_name = manifest.training.split_name
        _, old = lake_clips(lake, split="train", limit=args.calibration_clips,
                            split_name=split_name)
        held = clips_across_corpora(lake, split="dev", limit=32, split_name=split_name)
        varied = with_perturbed(clips_across_corpora(
            lake, split="train", limit=args.calibration_clips, split_name=split_name,
            exclude=set(held.ids)), CALIBRATION_PERTURBATIONS, seed=0)
        fp32_out = onnx_predict(folder / "model.onnx", test_set)
        rows = {}
        with tempfile.TemporaryDirectory() as tmp:
            # ONNX Runtime's histogram calibrators (percentile, entropy) need inputs of one
            # shape: those rows, and a min-max row to compare them with, use 2 s crops.
            crops = [s[:2 * 16_000] for s in varied.signals if s.size >= 2 * 16_000]
            for label, calibration, method in (("baseline", old, "minmax"),
                                               ("varied", varied.signals, "minmax"),
                                               ("varied-2s-minmax", crops, "minmax"),
                                               ("varied-2s-percentile", crops, "percentile"),
                                               ("varied-2s-entropy", crops, "entropy")):
                work = Path(tmp) / label
                work.mkdir()
                for built, path in quantize_candidates(folder / "model.onnx", work, calibration,
                                                       recipes=recipes,
                                                       calibrate_method=method):
                    row = f"{label} {built.method}" if chosen is None else label
                    if path is None:
                        rows[row] = {"error": built.error}
                        continue
                    rows[row] = figures(fp32_out, onnx_predict(path, test_set))
                    rows[row]["calibration_clips"] = len(calibration)
        if (folder / "model.int8.onnx").exists():
            rows["published"] = figures(fp32_out, onnx_predict(folder / "model.int8.onnx",
                                                               test_set))
        for label, row in rows.items():
            if "error" in row:
                print(f"{name:20s} {label:18s} {row['error']}")
                continue
            method = label.partition(" ")[2]
            base = rows.get(f"baseline {method}".strip(), {}).get("max_abs_diff")
            ratio = f"{row['max_abs_diff'] / base:.2f}x baseline" if base else ""
            print(f"{name:20s} {label:18s} min CCC {row['min_ccc']:.3f}  MAE "
                  f"{row['mae']:.4f}  max abs {row['max_abs_diff']:.4f}  "
                  f"{'within' if row['within_bounds'] else 'OUTSIDE'} bounds  {ratio}")
        results["models"][name] = {"recipe": chosen or "withheld: every candidate", **rows}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
