"""Prefect flow for ingest: plan, one task per shard (bounded), merge, publish.

Thin wiring around :mod:`ser_pipeline.ingest`; tasks pass shard references (paths), never
audio bytes.
"""

from __future__ import annotations

import time

from prefect import flow, task, unmapped

from flows.common import publish_summary, task_runner_for
from ser_pipeline.config import get_settings
from ser_pipeline.ingest import ingest_shard, merge_summaries, plan_ingest
from ser_pipeline.lake import Lake


@task(name="plan-ingest")
def plan_task(lake: str, source: str, corpus: str, recipe: str, recipe_options: dict,
              shard_size: int | None) -> tuple[list[dict], dict]:
    return plan_ingest(Lake.open(lake), source, corpus=corpus, recipe=recipe,
                       recipe_options=recipe_options, shard_size=shard_size)


@task(name="ingest-shard", retries=2, retry_delay_seconds=5,
      task_run_name="ingest-shard-{shard[index]}")
def shard_task(shard: dict, lake: str, max_duration_s: float | None) -> dict:
    # Retries are safe: parts are named by content, so a rerun shard writes nothing twice.
    return ingest_shard(shard, lake=lake, max_duration_s=max_duration_s)


@flow(name="ingest", task_runner=task_runner_for(get_settings()), log_prints=True)
def ingest_flow(
    source: str,
    corpus: str,
    recipe: str = "folder",
    lake: str | None = None,
    recipe_options: dict | None = None,
    max_duration_s: float | None = None,
    shard_size: int | None = None,
) -> dict:
    """Ingest a corpus (local folder or s3:// prefix) into the lake; returns the summary.

    Args:
        source: corpus root, a local path or ``s3://bucket/prefix``.
        corpus: corpus name recorded on every row.
        recipe: a name in ser_pipeline.recipes.RECIPES (``ser ingest --help`` lists them).
        lake: lake URL (default ``$SER_LAKE``).
        recipe_options: the recipe's keyword options, e.g. ``{"label_min": 1}``.
        max_duration_s: quarantine longer files (default ``$SER_MAX_DURATION_S``).
        shard_size: files per shard task (default ``$SER_SHARD_SIZE``).
    """
    started = time.perf_counter()
    lake_url = lake or get_settings().lake
    shards, plan = plan_task(lake_url, source, corpus, recipe, recipe_options or {}, shard_size)
    futures = shard_task.map(shards, lake=unmapped(lake_url),
                             max_duration_s=unmapped(max_duration_s))
    partials = [future.result() for future in futures]
    summary = merge_summaries(plan, partials, elapsed_s=time.perf_counter() - started)
    publish_summary(summary, key=f"ingest-{corpus}", title=f"Ingest of {corpus} from {source}")
    return summary
