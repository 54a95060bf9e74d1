"""bench/orchestration.py keeps working: a quick run (200 clips) of library vs Prefect flow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_prints_the_ratio_and_one_task_run_per_shard(tmp_path: Path) -> None:
    out = tmp_path / "orchestration.json"
    done = subprocess.run([sys.executable, "bench/orchestration.py", "--quick", "--json",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "ratio flow/library (wall):" in done.stdout
    assert "overhead" in done.stdout
    report = json.loads(out.read_text())
    # 200 clips in 4 parts of 50, shards of 16 running across parts: 12 x 16 + 8
    assert (report["clips"], report["audio_parts"], report["shards"]) == (200, 4, 13)
    # tasks follow shards, not files: exactly one label-shard task run per shard
    assert report["task_runs"] == [13]
    assert report["task_runs_by_name"] == {"label-shard": 13}
    assert report["ratio"][0] > 0 and report["ratio_cpu"][0] > 0
    assert report["library_wall_s"][0] > 0 and report["server_start_s"][0] > 0
