"""What the benches that time each run in a FRESH Python process share (bench/memory.py,
bench/orchestration.py): the options, and starting a worker and reading back its figures.

The parent process runs the same script again with ``--worker NAME``; the worker writes
its figures as JSON to ``--result``, so no measurement shares a process (imports,
allocator state, peak RSS) with another one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def add_options(parser: argparse.ArgumentParser, *, quick: str,
                workers: tuple[str, ...]) -> None:
    """``--quick`` (helped by ``quick``) and ``--json``, then the worker's hidden options
    ``--worker`` (one of ``workers``), ``--lake``, ``--teacher`` and ``--result``."""
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", choices=workers, help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    parser.add_argument("--teacher", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)


def run_worker(script: str, worker: str, *, lake: Path, result: Path, options: list[str],
               env: Mapping[str, str] | None = None) -> dict:
    """Run ``script --worker worker`` on ``lake`` in a fresh interpreter and return the
    figures it wrote to ``result`` (then deleted); exit with its stderr if it fails."""
    done = subprocess.run(
        [sys.executable, script, "--worker", worker, "--lake", str(lake), *options,
         "--result", str(result)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the {worker} run failed:\n{done.stderr[-4000:]}")
    figures = json.loads(result.read_text())
    result.unlink()
    return figures
