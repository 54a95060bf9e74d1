"""Prefect flow for labeling: plan shards, one task per shard (with retries), summarise.

The library (:mod:`ser_pipeline.label`) does the work: :func:`start_labeling` loads the
teacher and plans, :func:`label_shard` labels and commits one shard, and
:meth:`LabelRun.summarize` adds the results up. This file maps Prefect tasks over the
shards on a bounded task runner. Shard tasks take ids and a part path, never arrays, and
return small results. On Dask, each worker process loads the teacher once and reuses it
for every shard it runs.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.futures import wait

from flows.common import publish_summary, task_runner_for
from ser_pipeline.config import get_settings
from ser_pipeline.label import LabelOptions, Shard, ShardResult, label_shard, start_labeling
from ser_pipeline.lake import Lake


@task(name="label-shard", retries=2, retry_delay_seconds=[2, 10], persist_result=False,
      task_run_name="label-shard-{index}")
def label_shard_task(shard: Shard, options: LabelOptions, index: int) -> ShardResult:
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
        shard_size: at most this many clips per shard task (default: settings
            ``label_shard_size``; a small run is cut so that every worker gets one).
        window_s: window length for long clips.
        overlap_s: window overlap.
        batch_seconds: bound on padded audio seconds per forward pass.
        batch_size: bound on windows per forward pass.
        device: cpu, cuda[:N] or auto.
        precision: auto, fp32, fp16, bf16 or int8.
        threads: torch/ORT threads per worker.
        max_workers: bound on concurrent shard tasks (thread pool runner).

    Returns:
        The run's :class:`~ser_pipeline.label.LabelSummary` in its JSON form.
    """
    overrides = {"max_workers": max_workers} if max_workers else {}
    settings = get_settings(lake=lake, dask_address=dask_address, **overrides)
    run = start_labeling(Lake.open(settings=settings), teacher=teacher, corpora=corpora,
                         shard_size=shard_size, window_s=window_s, overlap_s=overlap_s,
                         batch_seconds=batch_seconds, batch_size=batch_size, device=device,
                         threads=threads, precision=precision)
    print(f"{len(run.shards)} shards to label with {run.teacher.teacher_id} "
          f"({run.plan.skipped_already_labeled} clips already labeled)")
    results: list[ShardResult] = []
    if run.shards:
        with task_runner_for(settings, dask_address=settings.dask_address) as runner:
            futures = [runner.submit(label_shard_task, parameters={
                "shard": shard, "options": run.options, "index": index})
                for index, shard in enumerate(run.shards)]
            wait(futures)
            results = [future.result() for future in futures]
    summary = run.summarize(results).to_dict()
    publish_summary(summary, key=f"label-{run.teacher.teacher_id}", title="Labeling summary")
    return summary
