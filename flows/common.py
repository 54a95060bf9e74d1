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

import logging  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from typing import Any  # noqa: E402

from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from ser_pipeline.config import Settings  # noqa: E402

# Training logs one INFO line per evaluation; Prefect's root level is WARNING, and the
# PREFECT_LOGGING_EXTRA_LOGGERS entry (flows/__init__.py) only adds the run-log handler.
logging.getLogger("ser_pipeline.train").setLevel(logging.INFO)


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
