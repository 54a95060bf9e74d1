"""Run the reliability suite and print one row per suite: trials, faults, lost, duplicated.

    .venv/bin/python bench/reliability_table.py            # runs tests/reliability
    .venv/bin/python bench/reliability_table.py --from results.jsonl   # only tabulate

The tests append one JSON line per test to ``$SER_RELIABILITY_REPORT``; this script sets
it to a temporary file, runs pytest, and sums the lines per suite. ``SER_RELIABILITY_SEED``
(default 0) picks the kill schedule of the crash tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ORDER = ["crash and resume", "object-store faults", "concurrency", "bad input", "security"]


def table(lines: list[dict]) -> str:
    suites: dict[str, dict] = defaultdict(lambda: {"tests": 0, "trials": 0, "faults": 0,
                                                   "lost": 0, "duplicated": 0})
    for entry in lines:
        row = suites[entry["suite"]]
        row["tests"] += 1
        for key in ("trials", "faults", "lost", "duplicated"):
            row[key] += entry[key]
    names = sorted(suites, key=lambda n: (ORDER.index(n) if n in ORDER else 99, n))
    out = ["| suite | tests | trials run | faults injected | rows lost | rows duplicated |",
           "|---|---|---|---|---|---|"]
    for name in names:
        row = suites[name]
        out.append(f"| {name} | {row['tests']} | {row['trials']} | {row['faults']} | "
                   f"{row['lost']} | {row['duplicated']} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", help="tabulate this JSONL file only")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args()
    if args.source:
        path, code = Path(args.source), 0
    else:
        path = Path(tempfile.mkdtemp(prefix="ser-reliability-")) / "results.jsonl"
        env = {**os.environ, "SER_RELIABILITY_REPORT": str(path)}
        root = Path(__file__).resolve().parents[1]
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "tests/reliability", *args.pytest_args], cwd=root, env=env)
        print(f"\nper-test results: {path}")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
        if path.exists() else []
    print(table(lines))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
