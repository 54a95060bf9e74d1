"""What every flow shares: Prefect defaults, the task-runner choice and artifacts.

Flows are thin wiring. They map Prefect tasks over *shards* (never one task per file:
servers struggle at a few thousand mapped tasks) and pass references, not arrays.
"""

from __future__ import annotations

import os

# Measured here: the first ephemeral start takes 11-15 s, so the default 10 s timeout
# fails on a fresh PREFECT_HOME. Telemetry cannot leave this machine anyway.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import contextlib  # noqa: E402
import logging  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator, Mapping  # noqa: E402
from typing import Any  # noqa: E402

from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from ser_pipeline.config import Settings  # noqa: E402


class _ToRunLogger(logging.Handler):
    """Forwards one thread's records of a library logger to that task run's logger.

    Students train as parallel tasks on threads of one process: the thread filter keeps
    each run's lines in its own run log.
    """

    def __init__(self, run_logger: logging.LoggerAdapter) -> None:
        super().__init__(logging.INFO)
        self.run_logger, self.thread = run_logger, threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.run_logger.log(record.levelno, record.getMessage())


_bridge_lock = threading.Lock()
_bridges: dict[str, int] = {}


@contextlib.contextmanager
def library_logs_in_run_log(name: str = "ser_pipeline.train") -> Iterator[None]:
    """Inside a task, send the ``name`` logger's INFO lines to the task run's log.

    Training logs one line per evaluation (step, train loss, dev CCC). Scoping the bridge
    to the task run keeps it off every other thread and off Dask workers' global logging
    (a process-wide PREFECT_LOGGING_EXTRA_LOGGERS entry recursed there).
    """
    from prefect import get_run_logger

    logger = logging.getLogger(name)
    handler = _ToRunLogger(get_run_logger())
    # The run logger prints to the console already: while any task bridges the logger,
    # its records stop at it instead of also reaching Prefect's root console handler.
    with _bridge_lock:
        _bridges[name] = _bridges.get(name, 0) + 1
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        with _bridge_lock:
            logger.removeHandler(handler)
            _bridges[name] -= 1
            logger.propagate = not _bridges[name]


def task_runner_for(settings: Settings, *, dask_address: str | None = None):
    """A bounded thread pool by default; an existing Dask cluster when an address is set."""
    address = dask_address or settings.dask_address
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address)
    return ThreadPoolTaskRunner(max_workers=settings.max_workers)


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60] or "summary"


def publish_summary(summary: Mapping[str, Any], *, key: str, title: str) -> None:
    """Record a stage summary as a Prefect table artifact (flat item/value rows)."""
    rows = []
    for name, value in summary.items():
        if isinstance(value, Mapping):
            rows.extend({"item": f"{name}.{k}", "value": str(v)} for k, v in value.items())
        else:
            rows.append({"item": name, "value": str(value)})
    create_table_artifact(table=rows, key=artifact_key(key), description=title)


def publish_markdown(markdown: str, *, key: str, title: str) -> None:
    create_markdown_artifact(markdown=markdown, key=artifact_key(key), description=title)
