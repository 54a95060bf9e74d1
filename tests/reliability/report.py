"""Tally of the reliability suites: trials, faults injected, rows lost, rows duplicated.

Tests call :func:`record` with what they measured. When ``SER_RELIABILITY_REPORT`` names a
file, each call appends one JSON line to it; ``bench/reliability_table.py`` runs the suite
with it set and prints the table (one row per suite, figures summed over its tests).
"""

from __future__ import annotations

import json
import os
import threading

_LOCK = threading.Lock()


def record(suite: str, *, test: str, trials: int, faults: int, lost: int, duplicated: int,
           **extra: object) -> dict:
    entry = {"suite": suite, "test": test, "trials": int(trials), "faults": int(faults),
             "lost": int(lost), "duplicated": int(duplicated), **extra}
    path = os.environ.get("SER_RELIABILITY_REPORT")
    if path:
        with _LOCK, open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
    return entry
