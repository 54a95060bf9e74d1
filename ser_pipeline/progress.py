"""Progress bars (rich) on stderr, so ``--json`` output on stdout stays clean."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

stderr_console = Console(stderr=True)


def progress_enabled() -> bool:
    """Bars show on a terminal; ``SER_PROGRESS=0`` or ``1`` forces the choice."""
    forced = os.environ.get("SER_PROGRESS")
    if forced is not None:
        return forced not in ("0", "false", "no")
    return sys.stderr.isatty()


@contextmanager
def progress_bar(description: str, *, total: float | None) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, **fields)``; a no-op when progress is disabled."""
    if not progress_enabled():
        yield lambda n=1, **_: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, console=stderr_console, transient=False) as bar:
        task = bar.add_task(description, total=total, info="")

        def advance(n: float = 1, **fields: object) -> None:
            info = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in fields.items())
            bar.update(task, advance=n, **({"info": info} if fields else {}))

        yield advance


def show_progress_logs(name: str = "ser_pipeline.train") -> None:
    """Print a library logger's INFO lines on stderr (outside Prefect, which routes them itself).

    Training logs one line per evaluation (step, train loss, dev CCC); without a handler,
    Python would show only warnings. Idempotent: a second call adds no second handler.
    """
    import logging

    logger = logging.getLogger(name)
    if not any(getattr(h, "_ser_progress", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler._ser_progress = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
