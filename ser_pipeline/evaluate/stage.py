"""The evaluate stage: pick the clips, predict what is missing, score, write the rows."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import asdict, replace
from typing import Any

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.evaluate.errors import EvaluateError
from ser_pipeline.evaluate.predict import predict_shard
from ser_pipeline.evaluate.predictors import Predictor, load_predictor
from ser_pipeline.evaluate.score import read_predictions, results_table, score_selection
from ser_pipeline.evaluate.selection import latest_references, select_clips
from ser_pipeline.executor import chunked, map_shards
from ser_pipeline.lake import Lake, content_key, utcnow
from ser_pipeline.onnx_model import BATCH_SIZE, DEFAULT_THREADS


def evaluate(
    lake: Lake,
    *,
    run_id: str | None = None,
    model: str | None = None,
    predictor: Predictor | None = None,
    corpora: Sequence[str] | None = None,
    splits: Sequence[str] = ("dev", "test"),
    split_name: str | None = None,
    teacher_id: str | None = None,
    batch_size: int = BATCH_SIZE,
    threads: int = DEFAULT_THREADS,
    window_s: float = 10.0,
    overlap_s: float = 2.0,
    executor: Executor | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Evaluate one model and write ``predictions`` and ``metrics`` rows to the lake.

    Args:
        lake: The lake holding audio, splits and labels (metrics are written there too).
        run_id: A training run in ``runs/`` (its best checkpoint).
        model: A local ONNX file or model folder, or
            ``registry://name[@version|latest][#int8|#fp32]`` (resolved as ``ser predict``
            resolves it).
        predictor: Instead of ``run_id``/``model``: any :class:`Predictor`.
        corpora: Corpora to evaluate; default the run's training corpora, else every
            corpus with ``splits`` rows.
        splits: Which splits of split corpora to score (corpora without splits: ``all``).
        split_name: Which split definition, when a corpus has several (default: the run's).
        teacher_id: Score against this teacher's labels only (default: the model's teacher,
            else every teacher that labeled the clips).
        batch_size: Most equal-length windows of one clip per model call.
        threads: ONNX Runtime intra-op threads per session (shards run in parallel).
        window_s: Window length for long clips (seconds).
        overlap_s: Window overlap (seconds).
        executor: Runs the prediction shards (default: a bounded thread pool).
        settings: Settings (shard size, workers, registry); default from the environment.

    Returns:
        A JSON-able summary: model identity, clip counts, rows written and ``results``
        (one entry per corpus/split/reference/teacher with CCC per dimension).

    Raises:
        EvaluateError: Bad model/corpus/split choice, or the model failed on every clip.
    """
    settings = settings or get_settings()
    if predictor is None:
        predictor = load_predictor(lake, run_id=run_id, model=model, batch_size=batch_size,
                                   threads=threads, settings=settings)
    base = predictor.identity
    # predictions depend on the windowing as much as on the weights
    identity = replace(base, model_key=content_key(base.model_key, window_s, overlap_s))
    predictor.identity = identity
    teacher = teacher_id or identity.teacher_id
    if corpora:
        chosen_corpora = list(dict.fromkeys(corpora))
    elif identity.corpora:
        chosen_corpora = list(identity.corpora)
    else:
        chosen_corpora = sorted(lake.ids("splits", column="corpus"))
        if not chosen_corpora:
            raise EvaluateError(
                f"{identity.model} records no training corpora and the lake has no splits; "
                "name the corpora to evaluate with --corpus"
            )
    selections, notices = select_clips(lake, corpora=chosen_corpora, splits=splits,
                                       split_name=split_name or identity.split_name)
    corpus_of = {i: s.corpus for s in selections for i in s.audio_ids}
    all_ids = sorted(corpus_of)
    if not all_ids:
        raise EvaluateError(f"no clips to evaluate in {', '.join(chosen_corpora)} for splits "
                            f"{', '.join(splits)}: " + "; ".join(notices))
    done = set(read_predictions(lake, identity.model_key, all_ids))
    todo = [(i, corpus_of[i]) for i in all_ids if i not in done]
    outcomes = map_shards(
        lambda shard: predict_shard(lake, predictor, shard, window_s=window_s,
                                    overlap_s=overlap_s),
        chunked(todo, settings.shard_size), executor=executor,
        max_workers=settings.max_workers, description=f"evaluate {identity.model}",
    )
    model_errors = sum(o.model_errors for o in outcomes)
    predictions = read_predictions(lake, identity.model_key, all_ids)
    if todo and not predictions and model_errors:
        first = next(o.first_error for o in outcomes if o.first_error)
        raise EvaluateError(f"the model failed on every clip ({model_errors}); first error: "
                            f"{first}")
    references = latest_references(lake, all_ids, teacher_id=teacher)
    if not any(k[0] == "teacher" for k in references):
        notices.append("no teacher labels for these clips"
                       + (f" from teacher {teacher!r}" if teacher else "")
                       + ": only human references scored (run ser label)")
    evaluated_at = utcnow()
    metric_rows, written = [], 0
    for selection in selections:
        rows, count = score_selection(lake, identity, selection, predictions=predictions,
                                      references=references, evaluated_at=evaluated_at)
        metric_rows.extend(rows)
        written += count
    return {
        "model": identity.model, "model_key": identity.model_key,
        "model_format": identity.model_format, "run_id": identity.run_id,
        "student": identity.student, "teacher_id": teacher,
        "model_params": identity.params, "model_bytes": identity.size_bytes,
        "corpora": chosen_corpora,
        "selections": [{"corpus": s.corpus, "split": s.split, "split_name": s.split_name,
                        "clips": len(s.audio_ids)} for s in selections],
        "clips": len(all_ids), "predicted": sum(o.predicted for o in outcomes),
        "reused_predictions": len(done),
        "quarantined": sum(o.quarantined for o in outcomes),
        "metrics_rows_written": written, "metrics_rows": len(metric_rows),
        "results": results_table(metric_rows), "notices": notices, "lake": lake.url,
        "identity": {k: v for k, v in asdict(identity).items() if k != "corpora"},
    }
