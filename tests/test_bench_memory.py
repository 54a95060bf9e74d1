"""bench/memory.py keeps working: a quick run (20 and 200 clips) of ingest and label."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_reports_peak_rss_per_stage_and_size(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    done = subprocess.run([sys.executable, "bench/memory.py", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "ratio 10N/N" in done.stdout
    report = json.loads(out.read_text())
    assert (report["n"], report["factor"]) == (20, 10)
    assert set(report["stages"]) == {"ingest", "label"}
    for stage in report["stages"].values():
        # a fresh interpreter with torch imported is well above 100 MiB, below 24 GiB
        assert all(100 < mib < 24 * 1024 for mib in stage["peak_mib_N"] + stage["peak_mib_10N"])
        # the printed ratio is big / small peak (both rounded to 0.1 MiB in the report)
        expected = stage["peak_mib_10N"][0] / stage["peak_mib_N"][0]
        assert abs(stage["ratio"][0] - expected) < 1e-3
        assert all(g >= 0 for g in stage["growth_mib_N"] + stage["growth_mib_10N"])
