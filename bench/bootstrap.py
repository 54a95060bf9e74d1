"""The bootstrap's cost against ``ser evaluate`` on the same 10,000 clips, in one run.

    .venv/bin/python bench/bootstrap.py                # 10,000 clips of 0.5-1.5 s, 100 speakers
    .venv/bin/python bench/bootstrap.py --quick        # 500 clips, smoke run
    .venv/bin/python bench/bootstrap.py --coverage 400 # interval coverage by speaker count

One lake of synthetic tones (speaker ids, a dev split, teacher and human labels) is built,
a wav2small is exported to ONNX fp32 (the fast path of ``ser evaluate --model``), and:

* **evaluate**: ``evaluate(lake, model=...)`` on every clip, timed (wall and CPU),
  predictions included, as a user runs it the first time;
* **bootstrap**: what the intervals cost per scored group (one per corpus, split and
  reference; the run has a teacher and a human reference, so 2 groups):
  ``bootstrap_metrics`` (CCC, Pearson, MAE, 1,000 resamples) plus ``per_speaker_ccc``,
  once resampling the ~100 speakers and once resampling clips (no speakers). Evaluate
  computes exactly these for every group (plus fairness slices where ``audio.gender`` is
  known; this lake has none);
* **re-evaluate**: the same ``evaluate`` again: every prediction is reused, so this is
  selection, references, intervals and the (skipped) writes;
* **references**: the labels evaluate scores against, read through the SQL views
  (``latest_references``: an in-memory DuckDB over the lake) against the plain pyarrow +
  Python implementation it replaced (kept below as the baseline).

Headline: bootstrap time for all groups / evaluate time, target <= 10 %. Timings on a
shared 2-core machine are noisy: the bootstrap is repeated and its median taken, and
CPU-time ratios are printed beside wall-time ones.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds scripts (bench/onnx.py) that would shadow real packages
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("SER_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEACHER = "bench-teacher"
SPLIT_NAME = "bench-split"


def write_part(url: str, start: int, stop: int, speakers: int, seed: int) -> int:
    """Clips ``start..stop-1`` (0.5-1.5 s tones) with audio, split, teacher and human rows."""
    import numpy as np
    from lakes import synthetic_labels, synthetic_params, tone

    from ser_pipeline.audio import encode_flac
    from ser_pipeline.lake import Lake, content_key, utcnow
    from ser_pipeline.schemas import SAMPLE_RATE

    audio, splits, teacher, human = [], [], [], []
    for index in range(start, stop):
        rng = np.random.default_rng(seed * 1_000_003 + index)
        params = synthetic_params(index, seed)
        signal = tone(**params, seconds=float(rng.uniform(0.5, 1.5)), seed=seed + index)
        flac = encode_flac(signal)
        audio_id = hashlib.sha256(flac).hexdigest()
        name = f"clip{index:06d}.flac"
        now = utcnow()
        labels = synthetic_labels(params)
        noisy = (np.array(labels) + rng.normal(scale=0.05, size=3)).tolist()
        audio.append({"audio_id": audio_id, "audio": {"bytes": flac, "path": name},
                      "corpus": "bench", "source_path": name,
                      "duration_s": signal.size / SAMPLE_RATE, "orig_sample_rate": SAMPLE_RATE,
                      "orig_channels": 1, "orig_format": "FLAC/PCM_16",
                      "speaker": f"spk{index % speakers:03d}", "split": None,
                      "is_silent": False, "ingested_at": now})
        splits.append({"audio_id": audio_id, "corpus": "bench", "split": "dev",
                       "split_name": SPLIT_NAME})
        teacher.append({"audio_id": audio_id, "teacher_id": TEACHER, "teacher_sha256": "0" * 64,
                        "arousal": noisy[0], "dominance": noisy[1], "valence": noisy[2],
                        "n_windows": 1, "labeled_at": now, "run_id": "bench"})
        human.append({"audio_id": audio_id, "corpus": "bench", "arousal": labels[0],
                      "dominance": labels[1], "valence": labels[2], "source_scale": "0-1",
                      "ingested_at": now})
    lake = Lake.open(url)
    key = ("bench-bootstrap", seed, start, stop)
    lake.write_part("audio", audio, key=content_key(*key, "audio"))
    lake.write_part("splits", splits, key=content_key(*key, "splits"))
    lake.write_part("teacher_labels", teacher, key=content_key(*key, "teacher"))
    lake.write_part("human_labels", human, key=content_key(*key, "human"))
    return len(audio)


def build_lake(url: str, *, clips: int, speakers: int, part_size: int = 1000) -> None:
    bounds = [(s, min(s + part_size, clips)) for s in range(0, clips, part_size)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(write_part, [url] * len(bounds), *zip(*bounds, strict=True),
                      [speakers] * len(bounds), [0] * len(bounds)))


def export_student(path: Path) -> None:
    import torch

    from ser_pipeline.export import export_fp32
    from ser_pipeline.students import build_student

    torch.manual_seed(0)
    export_fp32(build_student("wav2small"), path,
                metadata={"teacher_id": TEACHER, "student": "wav2small"})


def scored_arrays(lake, model_key: str) -> dict:
    """Predictions, both references and speakers of the scored clips, as arrays."""
    import numpy as np
    import pyarrow.dataset as ds

    from ser_pipeline.schemas import LABELS

    def table(name: str, columns: list[str], filter=None) -> dict:
        rows = lake.read(name, columns=columns, filter=filter).to_pylist()
        return {r["audio_id"]: r for r in rows}

    pred = table("predictions", ["audio_id", *LABELS], ds.field("model_key") == model_key)
    teacher = table("teacher_labels", ["audio_id", *LABELS])
    human = table("human_labels", ["audio_id", *LABELS])
    speaker = table("audio", ["audio_id", "speaker"])
    ids = sorted(pred)

    def matrix(rows: dict) -> np.ndarray:
        return np.array([[rows[i][d] for d in LABELS] for i in ids])

    return {"pred": matrix(pred), "refs": {"teacher": matrix(teacher), "human": matrix(human)},
            "speakers": [speaker[i]["speaker"] for i in ids]}


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def time_bootstrap(pred, ref, speakers, repeats: int) -> dict:
    from ser_pipeline.stats import bootstrap_metrics, per_speaker_ccc

    def once(with_speakers: bool) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), cpu_seconds()
        bootstrap_metrics(pred, ref, units=speakers if with_speakers else None)
        per_speaker_ccc(pred, ref, speakers if with_speakers else None)
        return time.perf_counter() - wall, cpu_seconds() - cpu

    out = {}
    for label, flag in (("speakers", True), ("clips", False)):
        runs = [once(flag) for _ in range(repeats)]
        out[label] = {"wall_s": statistics.median(r[0] for r in runs),
                      "cpu_s": statistics.median(r[1] for r in runs),
                      "wall_all_s": [round(r[0], 3) for r in runs]}
    return out


def python_latest_references(lake, ids: list[str], *, teacher_id: str | None) -> dict:
    """The baseline: evaluate's reference selection before it read the SQL views
    (pyarrow reads, Python sorts; the same semantics)."""
    import pyarrow.dataset as ds

    from ser_pipeline.schemas import LABELS

    refs: dict = {}
    id_filter = ds.field("audio_id").isin(ids)
    teacher_filter = id_filter if teacher_id is None else (
        id_filter & (ds.field("teacher_id") == teacher_id))
    rows = lake.read("teacher_labels", columns=["audio_id", "teacher_id", "teacher_sha256",
                                                *LABELS, "labeled_at"],
                     filter=teacher_filter).to_pylist()
    rows.sort(key=lambda r: (r["teacher_sha256"] is None, r["teacher_sha256"] or ""))
    rows.sort(key=lambda r: r["labeled_at"], reverse=True)
    chosen: dict = {}
    for row in rows:
        chosen.setdefault((row["teacher_id"], row["audio_id"]), row)
    for (teacher, audio_id), row in sorted(chosen.items()):
        refs.setdefault(("teacher", teacher), {})[audio_id] = tuple(row[d] for d in LABELS)
    human = lake.read("human_labels", columns=["audio_id", *LABELS, "ingested_at"],
                      filter=id_filter).to_pylist()
    human.sort(key=lambda r: tuple((r[d] is None, r[d] or 0.0) for d in LABELS))
    human.sort(key=lambda r: r["ingested_at"], reverse=True)
    latest: dict = {}
    for row in human:
        latest.setdefault(row["audio_id"], row)
    for audio_id, row in sorted(latest.items()):
        refs.setdefault(("human", teacher_id), {})[audio_id] = tuple(row[d] for d in LABELS)
    return refs


def time_references(lake, ids: list[str], repeats: int) -> dict:
    """Median wall time of the view-based and the Python reference selection; both must
    select the same labels."""
    from ser_pipeline.evaluate import latest_references

    out, results = {}, {}
    for label, function in (("views", latest_references), ("python", python_latest_references)):
        runs = []
        for _ in range(repeats):
            wall = time.perf_counter()
            results[label] = function(lake, ids, teacher_id=TEACHER)
            runs.append(time.perf_counter() - wall)
        out[label] = statistics.median(runs)
    if results["views"] != results["python"]:
        raise SystemExit("the view-based references differ from the Python baseline")
    return out


def coverage(datasets: int, seed: int = 0) -> None:
    """How often the 95 % interval holds the true CCC, by number of speakers (simulation).

    Each speaker has its own bias ``a_s ~ N(0, 0.1²)`` shared by its clips; clips add
    ``e ~ N(0, 0.15²)``; references are ``U(0, 1)`` plus a speaker mean ``N(0, 0.1²)``.
    The population CCC is then ``2 v / (2 v + 0.1² + 0.15²)`` with ``v = 1/12 + 0.1²``.
    """
    import numpy as np

    from ser_pipeline.stats import bootstrap_metrics

    var_ref = 1 / 12 + 0.1 ** 2
    truth = 2 * var_ref / (2 * var_ref + 0.1 ** 2 + 0.15 ** 2)
    rng = np.random.default_rng(seed)
    print(f"coverage of nominal 95 % intervals for the global CCC (true {truth:.4f}), "
          f"{datasets} simulated datasets of ~1,000 clips each:")
    for speakers, per_speaker, by in ((5, 200, "speaker"), (10, 100, "speaker"),
                                      (30, 33, "speaker"), (100, 10, "speaker"),
                                      (10, 100, "clip")):
        hits, widths = 0, []
        for k in range(datasets):
            codes = np.repeat(np.arange(speakers), per_speaker)
            ref = (rng.uniform(size=(codes.size, 3))
                   + rng.normal(scale=0.1, size=(speakers, 3))[codes])
            pred = (ref + rng.normal(scale=0.1, size=(speakers, 3))[codes]
                    + rng.normal(scale=0.15, size=ref.shape))
            result = bootstrap_metrics(pred, ref, units=codes if by == "speaker" else None,
                                       seed=k)
            for entry in result.dimensions:
                hits += entry.ccc.lo <= truth <= entry.ccc.hi
                widths.append(entry.ccc.hi - entry.ccc.lo)
        share = hits / (3 * datasets)
        print(f"  {speakers:3d} speakers x {per_speaker:3d} clips, resampling {by}s: "
              f"coverage {share:.1%} (±{1.96 * np.sqrt(share * (1 - share) / (3 * datasets)):.1%}),"
              f" median width {np.median(widths):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--speakers", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 clips, 2 repeats")
    parser.add_argument("--coverage", type=int, default=0, metavar="DATASETS",
                        help="instead: simulate interval coverage on this many datasets")
    args = parser.parse_args()
    if args.coverage:
        coverage(args.coverage)
        return
    if args.quick:
        args.clips, args.repeats = 500, 2

    from ser_pipeline.evaluate import evaluate
    from ser_pipeline.lake import Lake

    cpu_kind = "AVX-512 VNNI" if "avx512_vnni" in Path("/proc/cpuinfo").read_text() else \
        "AVX2 (no AVX-512 VNNI)"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{cpu_kind}")
    with tempfile.TemporaryDirectory(prefix="bench-bootstrap-") as tmp:
        url = str(Path(tmp) / "lake")
        started = time.perf_counter()
        build_lake(url, clips=args.clips, speakers=args.speakers)
        model = Path(tmp) / "wav2small.onnx"
        export_student(model)
        print(f"setup: {args.clips} clips, {args.speakers} speakers, lake + ONNX export in "
              f"{time.perf_counter() - started:.1f} s")

        lake = Lake.open(url)
        wall, cpu = time.perf_counter(), cpu_seconds()
        summary = evaluate(lake, model=str(model), corpora=["bench"], splits=("dev",),
                           teacher_id=TEACHER)
        eval_wall, eval_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        groups = len(summary["results"])
        print(f"evaluate: {summary['predicted']} clips predicted, {groups} scored groups "
              f"({', '.join(r['reference'] for r in summary['results'])}), "
              f"wall {eval_wall:.1f} s, CPU {eval_cpu:.1f} s")

        wall, cpu = time.perf_counter(), cpu_seconds()
        again = evaluate(lake, model=str(model), corpora=["bench"], splits=("dev",),
                         teacher_id=TEACHER)
        re_wall, re_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        assert again["predicted"] == 0 and again["metrics_rows_written"] == 0
        print(f"re-evaluate (predictions reused; selection, references, intervals): "
              f"wall {re_wall:.1f} s, CPU {re_cpu:.1f} s")

        arrays = scored_arrays(lake, summary["model_key"])
        timings = {ref: time_bootstrap(arrays["pred"], values, arrays["speakers"],
                                       args.repeats) for ref, values in arrays["refs"].items()}
        references = time_references(lake, sorted(lake.ids("splits")), args.repeats)
    print(f"references for {args.clips} clips (median of {args.repeats}, same labels): "
          f"SQL views {references['views'] * 1000:.0f} ms, Python baseline "
          f"{references['python'] * 1000:.0f} ms (ratio "
          f"{references['views'] / references['python']:.2f})")
    print(f"bootstrap per group (median of {args.repeats}; 1,000 resamples; CCC, Pearson, "
          "MAE + per-speaker CCC):")
    for ref, timing in timings.items():
        for unit, t in timing.items():
            print(f"  {ref:8s} by {unit:8s}: wall {t['wall_s'] * 1000:7.1f} ms "
                  f"(runs {t['wall_all_s']}), CPU {t['cpu_s'] * 1000:7.1f} ms")
    for unit in ("speakers", "clips"):
        added_wall = sum(t[unit]["wall_s"] for t in timings.values())
        added_cpu = sum(t[unit]["cpu_s"] for t in timings.values())
        ratio_wall, ratio_cpu = added_wall / eval_wall, added_cpu / eval_cpu
        verdict = "met" if ratio_wall <= 0.10 else "MISSED"
        print(f"ratio (by {unit}): bootstrap / evaluate = {ratio_wall:.2%} wall, "
              f"{ratio_cpu:.2%} CPU; target <= 10 %: {verdict}")


if __name__ == "__main__":
    main()
