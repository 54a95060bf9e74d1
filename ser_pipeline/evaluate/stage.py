"""The evaluate stage: pick the clips, predict what is missing, score, write the rows."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, replace
from typing import Any

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.evaluate.errors import EvaluateError
from ser_pipeline.evaluate.predict import ShardOutcome, predict_shard
from ser_pipeline.evaluate.predictors import ModelIdentity, Predictor, load_predictor
from ser_pipeline.evaluate.score import (
    FAIRNESS_ATTRIBUTE,
    SelectionScore,
    fairness_table,
    read_predictions,
    results_table,
    score_selection,
)
from ser_pipeline.evaluate.selection import (
    ClipMetadata,
    Selection,
    clip_metadata,
    latest_references,
    select_clips,
)
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
    identity = windowed(predictor, window_s=window_s, overlap_s=overlap_s)
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
    predicted = predict_missing(lake, predictor, corpus_of, window_s=window_s,
                                overlap_s=overlap_s, executor=executor, settings=settings)
    predictions, outcomes, done = predicted.predictions, predicted.outcomes, predicted.reused
    references = latest_references(lake, all_ids, teacher_id=teacher)
    if not any(k[0] == "teacher" for k in references):
        notices.append("no teacher labels for these clips"
                       + (f" from teacher {teacher!r}" if teacher else "")
                       + ": only human references scored (run ser label)")
    metadata = clip_metadata(lake, all_ids)
    evaluated_at = utcnow()
    scores = [(selection, score_selection(lake, identity, selection, predictions=predictions,
                                          references=references, metadata=metadata,
                                          evaluated_at=evaluated_at))
              for selection in selections]
    metric_rows = [row for _, score in scores for row in score.metric_rows]
    notices.extend(_metadata_notices(scores, metadata))
    return {
        "model": identity.model, "model_key": identity.model_key,
        "model_format": identity.model_format, "run_id": identity.run_id,
        "student": identity.student, "teacher_id": teacher,
        "model_params": identity.params, "model_bytes": identity.size_bytes,
        "corpora": chosen_corpora,
        "selections": [{"corpus": s.corpus, "split": s.split, "split_name": s.split_name,
                        "clips": len(s.audio_ids)} for s in selections],
        "clips": len(all_ids), "predicted": sum(o.predicted for o in outcomes),
        "reused_predictions": done,
        "quarantined": sum(o.quarantined for o in outcomes),
        "metrics_rows_written": sum(score.written for _, score in scores),
        "metrics_rows": len(metric_rows),
        "results": results_table(metric_rows), "fairness": fairness_table(scores),
        "notices": notices, "lake": lake.url,
        "identity": {k: v for k, v in asdict(identity).items() if k != "corpora"},
    }


def windowed(predictor: Predictor, *, window_s: float, overlap_s: float) -> ModelIdentity:
    """Give ``predictor`` the identity its predictions are stored under: the model key
    hashed with the windowing options (predictions depend on them as much as on the
    weights). Idempotent: a predictor already keyed for these options keeps its key."""
    base = predictor.identity
    if base.windows is None:
        predictor.identity = replace(
            base, model_key=content_key(base.model_key, window_s, overlap_s),
            windows=(window_s, overlap_s))
    elif base.windows != (window_s, overlap_s):
        raise EvaluateError(f"{base.model} is already keyed for windows {base.windows}, not "
                            f"{(window_s, overlap_s)}: load the model again")
    return predictor.identity


@dataclass(frozen=True)
class Predicted:
    """Predictions of one model for the clips asked for (stored and new ones).

    Attributes:
        predictions: ``{audio_id: row}`` for every clip with a prediction.
        outcomes: One per shard predicted now.
        reused: Clips whose prediction was already stored.
    """

    predictions: dict[str, dict]
    outcomes: list[ShardOutcome]
    reused: int


def predict_missing(lake: Lake, predictor: Predictor, corpus_of: dict[str, str], *,
                    window_s: float = 10.0, overlap_s: float = 2.0,
                    executor: Executor | None = None,
                    settings: Settings | None = None) -> Predicted:
    """Predict the clips of ``corpus_of`` (``{audio_id: corpus}``) that ``predictor`` has
    no stored prediction for, sharded, and return every prediction (evaluate's step 2;
    ``ser compare`` and the publish gate use it too).

    Raises:
        EvaluateError: the model failed on every clip it was asked to predict.
    """
    settings = settings or get_settings()
    identity = windowed(predictor, window_s=window_s, overlap_s=overlap_s)
    ids = sorted(corpus_of)
    done = set(read_predictions(lake, identity.model_key, ids))
    todo = [(i, corpus_of[i]) for i in ids if i not in done]
    outcomes = map_shards(
        lambda shard: predict_shard(lake, predictor, shard, window_s=window_s,
                                    overlap_s=overlap_s),
        chunked(todo, settings.shard_size), executor=executor,
        max_workers=settings.max_workers, description=f"predict {identity.model}",
    )
    model_errors = sum(o.model_errors for o in outcomes)
    predictions = read_predictions(lake, identity.model_key, ids)
    if todo and not predictions and model_errors:
        first = next(o.first_error for o in outcomes if o.first_error)
        raise EvaluateError(f"the model failed on every clip ({model_errors}); first error: "
                            f"{first}")
    return Predicted(predictions, outcomes, len(done))


def _metadata_notices(scores: list[tuple[Selection, SelectionScore]],
                      metadata: ClipMetadata) -> list[str]:
    """One line per corpus whose scored clips lack speaker or gender metadata (then clips
    are resampled, or no fairness slices are made), and per slice that could not be cut."""
    notices = []
    for corpus in dict.fromkeys(selection.corpus for selection, _ in scores):
        ids = [i for selection, _ in scores if selection.corpus == corpus
               for i in selection.audio_ids]
        if metadata.speakers_of(ids) is None:
            notices.append(f"corpus {corpus!r}: no speaker ids on the scored clips, so "
                           "intervals resample clips and there is no per-speaker CCC")
        if metadata.genders_of(ids) is None:
            notices.append(f"corpus {corpus!r}: no {FAIRNESS_ATTRIBUTE} metadata on the scored "
                           "clips, so no fairness slices")
    for selection, score in scores:
        for reference, _, slices in score.fairness:
            if slices.reason and slices.reason.startswith("not sliced"):
                notices.append(f"{selection.corpus}/{selection.split} vs {reference}: "
                               f"{FAIRNESS_ATTRIBUTE} slices {slices.reason}")
    return list(dict.fromkeys(notices))
