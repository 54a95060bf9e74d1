"""The scheduled relabel flow: new audio in, teacher labels out, drift reported.

Runs nightly from the `relabel` deployment (never overlapping itself). Inputs default to
the worker's settings (SER_RELABEL_SOURCES, SER_RELABEL_CORPUS, SER_TEACHER,
SER_MODEL_NAME, SER_DRIFT_THRESHOLD), so the schedule needs no parameters. When drift
exceeds the threshold it emits a `ser.drift.exceeded` Prefect event; an automation can
react by running the distill deployment.
"""

from __future__ import annotations

import pyarrow.dataset as ds
from prefect import flow, get_run_logger
from prefect.events import emit_event

from flows.common import publish_markdown, publish_summary
from flows.ingest import ingest_flow
from flows.label import label_flow
from ser_pipeline.config import get_settings
from ser_pipeline.distill import DistillError, preflight
from ser_pipeline.drift import drift_report, student_predictions
from ser_pipeline.lake import Lake
from ser_pipeline.registry import ModelNotFoundError

DRIFT_EVENT = "ser.drift.exceeded"


@flow(name="relabel", log_prints=True)
def relabel_flow(
    sources: list[str] | None = None,
    corpus: str | None = None,
    recipe: str = "folder",
    teacher: str | None = None,
    model_name: str | None = None,
    drift_threshold: float | None = None,
    reference_weeks: int = 4,
    lake: str | None = None,
    registry: str | None = None,
) -> dict:
    """Ingest newly arrived audio, label it with the production teacher, report drift.

    Args:
        sources: folders / s3:// prefixes with new audio (default $SER_RELABEL_SOURCES).
        corpus: corpus name for the new audio (default $SER_RELABEL_CORPUS).
        recipe: ingest recipe for the sources.
        teacher: production teacher spec (default $SER_TEACHER).
        model_name: registry name of the production student, compared with the teacher on
            the new clips (default $SER_MODEL_NAME; skipped when nothing is published).
        drift_threshold: KS statistic that triggers the drift event (default
            $SER_DRIFT_THRESHOLD).
        reference_weeks: weeks of earlier labels the new ones are compared with.
        lake: lake URL (default $SER_LAKE).
        registry: registry URL (default $SER_REGISTRY).
    """
    logger = get_run_logger()
    settings = get_settings(lake=lake, registry=registry)
    sources = list(sources or settings.relabel_sources)
    corpus = corpus or settings.relabel_corpus
    teacher = teacher or settings.teacher
    model_name = model_name or settings.model_name
    threshold = drift_threshold if drift_threshold is not None else settings.drift_threshold
    if not teacher:
        raise DistillError("no production teacher: set SER_TEACHER on the worker or pass "
                           "the teacher parameter")
    if not sources:
        raise DistillError("no sources: set SER_RELABEL_SOURCES (a JSON list) on the worker "
                           "or pass the sources parameter")
    preflight(sources=sources, teacher=teacher, settings=settings)

    ingested = [ingest_flow(source=source, corpus=corpus, recipe=recipe, lake=settings.lake)
                for source in sources]
    labels = label_flow(teacher=teacher, lake=settings.lake)
    lake_handle = Lake.open(settings.lake, settings=settings)
    new_ids = sorted(lake_handle.ids("teacher_labels",
                                     filter=ds.field("run_id") == labels["run_id"]))
    predictions, model = None, None
    if new_ids:
        try:
            model = f"registry://{model_name}@latest"
            predictions = student_predictions(lake_handle, model_uri=model, audio_ids=new_ids,
                                              settings=settings)
        except ModelNotFoundError:
            logger.warning("no published model %r: drift report without student "
                           "disagreement", model_name)
            model = None
    drift = drift_report(lake_handle, teacher_id=labels["teacher_id"],
                         label_run_id=labels["run_id"], reference_weeks=reference_weeks,
                         threshold=threshold, student_predictions=predictions, model=model)
    if drift["exceeded"]:
        emit_event(event=DRIFT_EVENT,
                   resource={"prefect.resource.id": f"ser.teacher.{labels['teacher_id']}"},
                   payload={k: v for k, v in drift.items() if k != "dimensions"}
                   | {"dimensions": drift["dimensions"]})
        logger.warning("drift above %.2f: emitted %s", threshold, DRIFT_EVENT)
    summary = {"ingested": sum(s.get("ingested", 0) for s in ingested),
               "labeled": labels["clips_labeled"], "teacher_id": labels["teacher_id"],
               "label_run_id": labels["run_id"], "drift_exceeded": drift["exceeded"],
               "drift_report_id": drift["report_id"], "model": model}
    publish_summary(summary, key="relabel", title="Relabel summary")
    publish_markdown(drift_markdown(drift), key="drift-report", title="Label drift")
    return {**summary, "drift": drift}


def drift_markdown(drift: dict) -> str:
    lines = [f"## Label drift ({drift['new_clips']} new clips, threshold {drift['threshold']})",
             "", "| dimension | new mean | ref mean | KS | student CCC | student MAE | drift |",
             "|---|---|---|---|---|---|---|"]
    for dimension, entry in drift.get("dimensions", {}).items():
        lines.append("| " + " | ".join(str(x) for x in (
            dimension, _fmt(entry["new_mean"]), _fmt(entry["ref_mean"]), _fmt(entry["ks"]),
            _fmt(entry["student_ccc"]), _fmt(entry["student_mae"]), entry["exceeded"])) + " |")
    if drift.get("note"):
        lines += ["", drift["note"]]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
