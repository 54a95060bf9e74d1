"""Prefect flow for labeling: plan shards, one task per shard (with retries), summarise.

The library (:mod:`ser_pipeline.label`) does the work; this file is wiring. Shard tasks
take ids and a part path, never arrays, and return small count dicts. On Dask, each
worker process loads the teacher once and reuses it for every shard it runs.
"""

from __future__ import annotations

import time

from prefect import flow, task
from prefect.futures import wait

from flows.common import publish_summary, task_runner_for
from ser_pipeline.config import get_settings
from ser_pipeline.label import LabelOptions, label_shard, new_label_run_id, plan_shards, summarize
from ser_pipeline.lake import Lake
from ser_pipeline.teacher import cached_teacher


@task(name="label-shard", retries=2, retry_delay_seconds=[2, 10], persist_result=False,
      task_run_name="label-shard-{index}")
def label_shard_task(shard: dict, options: dict, index: int) -> dict:
    """Label one shard; safe to retry (commits are deduplicated per teacher)."""
    return label_shard(shard, options)


@flow(name="label", log_prints=True, persist_result=False)
def label_flow(
    teacher: str,
    corpora: list[str] | None = None,
    lake: str | None = None,
    dask_address: str | None = None,
    shard_size: int | None = None,
    window_s: float = 10.0,
    overlap_s: float = 2.0,
    batch_seconds: float = 64.0,
    batch_size: int = 16,
    device: str = "cpu",
    precision: str = "auto",
    threads: int | None = None,
    max_workers: int | None = None,
) -> dict:
    """Label every clip of ``lake`` (optionally only ``corpora``) the teacher has not labeled.

    Args:
        teacher: teacher spec (hf:, onnx:, ensemble:).
        corpora: restrict to these corpora.
        lake: lake URL (default: settings).
        dask_address: run shards on this Dask scheduler (default: SER_DASK_ADDRESS).
        shard_size: clips per shard task (default: settings).
        window_s: window length for long clips.
        overlap_s: window overlap.
        batch_seconds: bound on padded audio seconds per forward pass.
        batch_size: bound on windows per forward pass.
        device: cpu, cuda[:N] or auto.
        precision: auto, fp32, fp16, bf16 or int8.
        threads: torch/ORT threads per worker.
        max_workers: bound on concurrent shard tasks (thread pool runner).
    """
    overrides = {"max_workers": max_workers} if max_workers else {}
    settings = get_settings(lake=lake, dask_address=dask_address, **overrides)
    started = time.perf_counter()
    the_lake = Lake.open(settings=settings)
    loaded = cached_teacher(teacher, device=device, threads=threads, precision=precision)
    options = LabelOptions(lake=the_lake.url, teacher=teacher, device=device, threads=threads,
                           precision=precision, window_s=window_s, overlap_s=overlap_s,
                           batch_seconds=batch_seconds, batch_size=batch_size,
                           run_id=new_label_run_id())
    shards, plan = plan_shards(the_lake, teacher_id=loaded.teacher_id, corpora=corpora,
                               shard_size=shard_size or settings.shard_size)
    print(f"{len(shards)} shards to label with {loaded.teacher_id} "
          f"({plan['skipped_already_labeled']} clips already labeled)")
    results: list[dict] = []
    if shards:
        with task_runner_for(settings, dask_address=settings.dask_address) as runner:
            futures = [runner.submit(label_shard_task, parameters={
                "shard": shard, "options": options.to_dict(), "index": index})
                for index, shard in enumerate(shards)]
            wait(futures)
            results = [future.result() for future in futures]
    summary = summarize(results, plan=plan, teacher=loaded,
                        wall_s=time.perf_counter() - started, options=options,
                        shards=len(shards), corpora=corpora)
    publish_summary(summary, key=f"label-{loaded.teacher_id}", title="Labeling summary")
    return summary
