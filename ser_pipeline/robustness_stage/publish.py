"""Publishing: the suite on the file a new version will serve, its results in the
manifest, its rows in the lake under ``name@version``."""

from __future__ import annotations

from typing import Any

from ser_pipeline.config import Settings
from ser_pipeline.evaluate import EvaluateError
from ser_pipeline.lake import Lake
from ser_pipeline.robustness_stage.errors import RobustnessError
from ser_pipeline.robustness_stage.records import RobustnessRun
from ser_pipeline.robustness_stage.run import run_robustness, write_robustness


def manifest_sections(run: RobustnessRun) -> list[Any]:
    """The run as the manifest's typed ``robustness`` sections (one per suite run)."""
    from ser_pipeline.registry.manifest import (
        RobustnessCheck,
        RobustnessFigure,
        RobustnessSection,
    )

    figure_fields = set(RobustnessFigure.model_fields)
    sections = []
    for record in run.records:
        checks: dict[str, list[dict[str, Any]]] = {}
        for row in record.rows:
            checks.setdefault(row["perturbation"], []).append(row)
        first = record.rows[0]
        sections.append(RobustnessSection(
            file=run.model_file, corpus=record.corpus, split=record.split,
            reference=record.reference, teacher_id=record.teacher_id, n_clips=record.n_clips,
            max_ccc_drop=first["max_ccc_drop"], min_unchanged_share=first["min_unchanged_share"],
            ci_level=first["ci_level"], ci_method=first["ci_method"], ci_unit=first["ci_unit"],
            ci_units=first["ci_units"], ci_resamples=first["ci_resamples"],
            perturbation_seed=first["perturbation_seed"],
            perturbations=[RobustnessCheck(
                perturbation=name, description=rows[0]["description"],
                passed=all(r["passed"] for r in rows),
                dimensions=[RobustnessFigure(**{k: r[k] for k in figure_fields})
                            for r in rows]) for name, rows in checks.items()]))
    return sections


def robustness_of_export(lake: Lake, export: Any, *, settings: Settings | None = None,
                         **options: Any) -> RobustnessRun:
    """The suite on the file ``export`` will serve once published, on the dev clips of
    the run's training corpora against its teacher; nothing is written (the version has
    no name yet: :func:`write_robustness` after the publish)."""
    from ser_pipeline.evaluate import OnnxPredictor
    from ser_pipeline.registry.manifest import serving_for

    run = export.run
    if run is None:
        raise RobustnessError("this export has no training run: nothing to test against")
    served = serving_for(export).default_file
    try:
        predictor = OnnxPredictor(export.files[served].path)
        return run_robustness(lake, predictor=predictor,
                              corpora=run.training.corpora or None,
                              split_name=run.training.split_name,
                              teacher_id=run.provenance.teacher_id, write=False,
                              settings=settings, **options)
    except EvaluateError as error:
        raise RobustnessError(f"robustness suite before publishing run "
                              f"{run.provenance.run_id}: {error}") from None


def publish_with_robustness(registry: Any, export: Any, lake: Lake, *, name: str,
                            version: int | None = None, gate: Any = None,
                            **options: Any) -> Any:
    """Publish ``export`` with its robustness results: the suite runs on the file the
    version will serve (:func:`robustness_of_export`), the manifest and model card carry
    the results, and the rows land in ``robustness/`` under ``name@version``.

    Args:
        registry: The :class:`ser_pipeline.registry.Registry` to publish to.
        export: The export (or its folder).
        lake: The lake with the run's dev clips and teacher labels.
        name: Model name.
        version: Explicit version (default the next free one).
        gate: The no-regression gate's decision (``GateRecord``): ``latest`` moves only
            when it says so (:meth:`Registry.publish`).
        **options: Options of :func:`run_robustness` (``n_resamples``, ``max_clips``...).

    Returns:
        The manifest as written (the caller records it in the DuckDB ``models`` table).
    """
    from ser_pipeline.export import load_export

    if not hasattr(export, "files"):
        export = load_export(export)
    checked = robustness_of_export(lake, export, settings=registry.settings, **options)
    manifest = registry.publish(export, name=name, version=version, record_db=False,
                                robustness=manifest_sections(checked), gate=gate)
    write_robustness(lake, checked, model=f"{manifest.name}@{manifest.version}")
    return manifest
