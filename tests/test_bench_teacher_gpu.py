"""bench/teacher_gpu.py keeps working: a CPU smoke run with a tiny teacher, no Prefect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SMOKE = """
import json, runpy, sys
sys.argv = ["teacher_gpu.py", "--no-prefect", "--device", "cpu", "--size", "tiny",
            "--clips", "6", "--min-s", "1", "--max-s", "14", "--precisions", "fp32",
            "--batch-sizes", "1,4", "--decode-workers", "2", "--threads", "1",
            "--out", sys.argv[1]]
runpy.run_path("bench/teacher_gpu.py", run_name="__main__")
banned = [m for m in sys.modules if m.split(".")[0] in
          ("prefect", "ser_pipeline", "flows", "pydantic", "fsspec", "duckdb", "dask")]
print("BANNED", json.dumps(banned))
"""


def test_cpu_smoke_run_without_prefect(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, "-c", SMOKE, str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    banned = json.loads(done.stdout.split("BANNED", 1)[1])
    assert banned == [], f"--no-prefect imported {banned}"
    results = json.loads(out.read_text())
    assert results["device"].startswith("cpu") and len(results["runs"]) == 2
    first, second = results["runs"]
    assert first["clips"] == second["clips"] == 6
    assert first["audio_seconds"] == second["audio_seconds"] > 6
    assert first["batches"] > second["batches"]  # batch 1 vs batch 4
    # padding + masks + windowing: batch size must not change the labels
    assert second["max_abs_diff_vs_first"] < 1e-4
    assert all(run["audio_s_per_s"] > 0 for run in results["runs"])
