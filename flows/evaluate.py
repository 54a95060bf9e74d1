"""Prefect flow for evaluation: one task per model, a table artifact of the results.

The library (:func:`ser_pipeline.evaluate.evaluate`) does the work, sharding the clips and
streaming audio itself; a task here is one model, so the UI shows one box per model with
its own retries. Task inputs are ids and URLs, outputs small summary dicts.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.futures import wait

from flows.common import artifact_key, publish_markdown, publish_summary, task_runner_for
from ser_pipeline.config import get_settings
from ser_pipeline.evaluate import evaluate
from ser_pipeline.lake import Lake


@task(name="evaluate-model", retries=1, retry_delay_seconds=5, persist_result=False,
      task_run_name="evaluate-{label}")
def evaluate_model_task(label: str, run_id: str | None, model: str | None, options: dict,
                        lake: str, registry: str | None) -> dict:
    """Evaluate one model; safe to retry (predictions and metrics parts are idempotent)."""
    settings = get_settings(lake=lake, registry=registry)
    return evaluate(Lake.open(settings=settings), run_id=run_id, model=model,
                    settings=settings, **options)


def results_markdown(evaluations: list[dict]) -> str:
    """A markdown table: one line per model/corpus/split/reference with CCC per dimension."""
    lines = ["| model | corpus | split | reference | teacher | n | CCC A | CCC D | CCC V | mean "
             "| speaker mean |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(row: dict, key: str) -> str:
        value, lo, hi = row.get(key), row.get(f"{key}_lo"), row.get(f"{key}_hi")
        if value is None:
            return "–"
        return f"{value:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None
                                 else "")

    for summary in evaluations:
        for row in summary["results"]:
            lines.append(
                f"| {summary['model']} | {row['corpus']} | {row['split']} | {row['reference']} "
                f"| {row['teacher_id'] or '–'} | {row['n']} | {fmt(row, 'ccc_arousal')} | "
                f"{fmt(row, 'ccc_dominance')} | {fmt(row, 'ccc_valence')} | "
                f"{fmt(row, 'ccc_mean')} | {fmt(row, 'speaker_ccc_mean')} |")
    return "\n".join(lines + ["", "[lo, hi]: 95 % percentile bootstrap intervals (speakers "
                               "resampled where known); speaker mean: the mean of "
                               "per-speaker CCCs"])


@flow(name="evaluate", log_prints=True, persist_result=False)
def evaluate_flow(
    run_ids: list[str] | None = None,
    models: list[str] | None = None,
    corpora: list[str] | None = None,
    lake: str | None = None,
    registry: str | None = None,
    splits: list[str] | None = None,
    split_name: str | None = None,
    teacher_id: str | None = None,
    batch_size: int = 16,
    threads: int = 1,
    max_workers: int | None = None,
) -> dict:
    """Evaluate training runs and/or ONNX models (paths or registry:// URIs).

    Args:
        run_ids: training runs to evaluate (best checkpoints).
        models: ONNX files or ``registry://name[@version|latest]`` URIs.
        corpora: corpora to evaluate (default: each run's training corpora).
        lake: lake URL (default: settings).
        registry: registry URL for ``registry://`` models (default: settings).
        splits: splits to score (default dev and test).
        split_name: split definition when a corpus has several.
        teacher_id: score against this teacher (default: each model's teacher).
        batch_size: most equal-length windows of one clip per model call.
        threads: ONNX Runtime threads per session (default 1, the paper's setting).
        max_workers: models evaluated at once (default: settings).
    """
    overrides = {"max_workers": max_workers} if max_workers else {}
    settings = get_settings(lake=lake, registry=registry, **overrides)
    targets = [(run_id, None) for run_id in run_ids or []] + [(None, m) for m in models or []]
    if not targets:
        raise ValueError("nothing to evaluate: pass run_ids and/or models")
    options = {"corpora": corpora, "splits": tuple(splits or ("dev", "test")),
               "split_name": split_name, "teacher_id": teacher_id, "batch_size": batch_size,
               "threads": threads}
    with task_runner_for(settings) as runner:
        futures = [runner.submit(evaluate_model_task, parameters={
            "label": artifact_key(run_id or model), "run_id": run_id, "model": model,
            "options": options, "lake": settings.lake, "registry": settings.registry})
            for run_id, model in targets]
        wait(futures)
        evaluations = [future.result() for future in futures]
    table = [{"model": s["model"], **row} for s in evaluations for row in s["results"]]
    from prefect.artifacts import create_table_artifact

    create_table_artifact(table=table or [{"model": "-", "note": "no metrics"}],
                          key="evaluate-metrics", description="CCC per model, corpus, split "
                          "and reference")
    publish_markdown("## Evaluation\n\n" + results_markdown(evaluations),
                     key="evaluate-summary", title="Evaluation summary")
    summary = {"models": [s["model"] for s in evaluations], "lake": settings.lake,
               "metrics_rows_written": sum(s["metrics_rows_written"] for s in evaluations),
               "evaluations": evaluations}
    publish_summary({k: v for k, v in summary.items() if k != "evaluations"},
                    key="evaluate", title="Evaluation totals")
    return summary
