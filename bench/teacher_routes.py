"""Routes to a demo teacher that judges emotion: CCC against the human labels, and time.

Each route fine-tunes the same random-weight tiny wav2vec2 (``ser teacher init``, seed 0)
on the demo corpus's human labels (200 clips, 10 voices) and is scored against the human
labels of the pool's dev clips, whose voices and sentences no training clip uses:

- ``head``: the head only, backbone frozen (the demo's teacher before issue 19);
- ``top2``: the head and the top two transformer layers, conv encoder frozen;
- ``full-N``: every weight, conv encoder included (``train_all``), N steps, 4 s crops;
- ``shipped``: the teacher that ships with the package (``full-300``, built by
  ``make demo-teacher``), scored as it is; its time is the one its build recorded.

All use 8 views per clip (``finetune_teacher(views=8)``). The baseline is the head-only
route, measured in the same run; each row prints its mean CCC's difference from it and
its CPU and wall time. Needs the demo lake (``make demo`` first).

    .venv/bin/python bench/teacher_routes.py [--lake lake] [--steps 100,300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from ser_pipeline.audio import decode_flac
from ser_pipeline.cpu import cpu_info
from ser_pipeline.demo.teacher import SHIPPED
from ser_pipeline.lake import Lake
from ser_pipeline.schemas import LABELS
from ser_pipeline.stats import bootstrap_metrics
from ser_pipeline.teacher import finetune_teacher, init_teacher, load_teacher


def pool_dev(lake: Lake, corpus: str) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """The pool's dev clips with human labels: signals, labels ``[n, 3]``, speakers."""
    labels = lake.read("human_labels", filter=ds.field("corpus") == corpus).to_pylist()
    by_id = {row["audio_id"]: [row[d] for d in LABELS] for row in labels}
    rows = lake.audio_for(by_id, columns=["audio_id", "audio", "speaker"]).to_pylist()
    rows.sort(key=lambda row: row["audio_id"])
    return ([decode_flac(row["audio"]["bytes"]) for row in rows],
            np.array([by_id[row["audio_id"]] for row in rows]),
            [row["speaker"] for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", default="lake")
    parser.add_argument("--corpus", default="demo")
    parser.add_argument("--steps", default="100")
    parser.add_argument("--top-steps", type=int, default=150)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    machine = cpu_info()
    print(f"CPU: {machine.model} ({machine.kind})")
    lake = Lake.open(args.lake)
    signals, human, speakers = pool_dev(lake, f"{args.corpus}-pool")
    print(f"scored on {len(signals)} pool dev clips ({len(set(speakers))} unseen voices)")
    routes = [("head", dict(steps=60, lr=3e-3)),
              ("top2", dict(steps=args.top_steps, lr=1e-3, train_top_layers=2))]
    routes += [(f"full-{n}", dict(steps=int(n), lr=1e-3, train_all=True, max_clip_s=4.0))
               for n in args.steps.split(",") if n]
    results = {"machine": machine.model_dump(), "clips": len(signals), "routes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base = init_teacher(Path(tmp) / "base", arch="wav2vec2", size="tiny", seed=0)
        for name, options in [*routes, ("shipped", {})]:
            wall, cpu = time.perf_counter(), time.process_time()
            if name == "shipped":
                spec = f"hf:{SHIPPED}"
                wall = cpu = float("nan")
            else:
                spec = finetune_teacher(lake, teacher=f"hf:{base}", corpus=args.corpus,
                                        out=Path(tmp) / name, views=8, seed=0,
                                        **options)["teacher"]
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            predicted = load_teacher(spec).predict(signals)
            boot = bootstrap_metrics(predicted, human, units=speakers, n_resamples=1000,
                                     seed=0)
            ccc = {d: boot.dimension(d).ccc for d in LABELS}
            mean = float(np.mean([ccc[d].value for d in LABELS]))
            results["routes"][name] = {
                **options, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                "ccc_vs_human": {d: [round(ccc[d].value, 3), round(ccc[d].lo, 3),
                                     round(ccc[d].hi, 3)] for d in LABELS},
                "mean": round(mean, 3)}
    head = results["routes"]["head"]["mean"]
    for name, row in results["routes"].items():
        dims = " / ".join(f"{v[0]:.3f} [{v[1]:.2f},{v[2]:.2f}]"
                          for v in row["ccc_vs_human"].values())
        print(f"{name:9s} A/D/V {dims}  mean {row['mean']:.3f} ({row['mean'] - head:+.3f} "
              f"vs head)  {row['cpu_s']:.0f} CPU-s, {row['wall_s']:.0f} s wall")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
