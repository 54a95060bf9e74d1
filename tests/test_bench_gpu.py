"""bench/gpu.sh keeps working: its three steps at smoke sizes with ``--device cpu``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ser_pipeline.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_unknown_step_is_refused_with_the_choices() -> None:
    done = _run("--device", "cpu", "--steps", "teacher,warmup", timeout=60)
    assert done.returncode == 2
    assert "unknown step(s) ['warmup']" in done.stderr and "teacher, train, distill" in done.stderr


@pytest.mark.slow
def test_cpu_smoke_run_writes_one_results_file(tmp_path: Path) -> None:
    out, work = tmp_path / "gpu.json", tmp_path / "work"
    done = _run("--device", "cpu", "--out", str(out), "--work", str(work), "--budget-s", "900",
                timeout=1200)
    assert out.is_file(), done.stderr[-3000:]
    results = json.loads(out.read_text())
    failed = {name: step.get("error") for name, step in results["steps"].items()
              if step["status"] != "ok"}
    assert done.returncode == 0 and not failed, (failed, done.stderr[-3000:])
    assert results["device"] == "cpu" and results["device_name"].startswith("cpu")
    assert results["passed"] is True and 0 < results["seconds"] <= results["budget_s"]
    steps = results["steps"]
    assert list(steps) == ["teacher", "train", "distill"]
    assert all(step["status"] == "ok" and step["wall_s"] > 0 for step in steps.values())

    teacher = steps["teacher"]
    assert teacher["runs"] and all(run["audio_s_per_s"] > 0 for run in teacher["runs"])
    assert teacher["best_audio_s_per_s"] == max(run["audio_s_per_s"] for run in teacher["runs"])
    assert teacher["target_met"] == (teacher["best_audio_s_per_s"] >= 5000)
    assert all(run["clips"] == 6 and run["audio_seconds"] > 6 for run in teacher["runs"])

    train = steps["train"]
    assert [run["student"] for run in train["runs"]] == ["wav2small"]
    run = train["runs"][0]
    assert run["steps"] == 4 and run["clips_per_s"] > 0 and 0 <= run["data_wait_fraction"] <= 1

    distill = steps["distill"]
    assert distill["ingested"] == 16
    assert distill["label"]["clips_labeled"] == 16 and distill["label"]["device"] == "cpu"
    # the teacher already ran on the device: distill's own (CPU) label stage adds nothing
    assert distill["distill_label_stage_clips"] == 0
    assert distill["trained"] == 1 and distill["metrics_rows_written"] > 0
    assert distill["published"]["wav2small"]["published"] is True
    assert set(distill["seconds"]) == {"ingest", "label", "distill"}
    assert min(distill["seconds"].values()) >= 0 and distill["seconds"]["distill"] > 0
    manifest = Registry(str(work / "registry")).show("gpu-wav2small")
    assert manifest.version == distill["published"]["wav2small"]["version"] == 1
