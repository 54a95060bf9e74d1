"""Prefect flow: export a run (fp32 + int8, parity-checked), then publish it.

Two tasks, passing references only: ``export-run`` writes the ONNX files to a work folder
and returns its path; ``publish-model`` reads ``export.json`` there, compares the
candidate with ``latest`` on the gate clips (the no-regression gate) and publishes. Parity
failure raises in the export task, so the publish task never runs and the registry is
unchanged. The library (:func:`ser_pipeline.registry.publish_run`) does the same without
Prefect. The two tasks run in sequence, called directly (no task runner pool needed).
"""

from __future__ import annotations

import tempfile

from prefect import flow, task

from flows.common import publish_summary
from ser_pipeline.config import get_settings
from ser_pipeline.export import export_run
from ser_pipeline.lake import Lake
from ser_pipeline.registry import Registry, publish_gated
from ser_pipeline.registry import publish_summary as manifest_summary


@task(name="export-run", task_run_name="export-{run_id}")
def export_task(lake: str, run_id: str, out_dir: str, calibration_clips: int) -> str:
    export_run(Lake.open(lake), run_id, out_dir=out_dir, calibration_clips=calibration_clips)
    return out_dir


@task(name="publish-model", task_run_name="publish-{name}")
def publish_task(out_dir: str, *, name: str, lake: str, registry: str, version: int | None,
                 gate_corpora: list[str] | None, gate_split: str, allow_regression: bool,
                 robustness: bool = False) -> dict:
    """Gate the export against ``latest`` (on the lake's gate clips), then publish it (with
    the robustness suite on the file to be served when ``robustness``)."""
    target = Registry(registry)
    manifest = publish_gated(Lake.open(lake), out_dir, name=name, registry=target,
                             version=version, gate_corpora=gate_corpora,
                             gate_split=gate_split, allow_regression=allow_regression,
                             record_db=False, robustness=robustness)
    return manifest_summary(manifest, db=target.record_db(manifest))


@flow(name="publish")
def publish_flow(
    run_id: str,
    name: str,
    lake: str | None = None,
    registry: str | None = None,
    version: int | None = None,
    calibration_clips: int = 32,
    gate_corpora: list[str] | None = None,
    gate_split: str = "dev",
    allow_regression: bool = False,
    robustness: bool = False,
) -> dict:
    """Export ``run_id`` and publish it as ``name`` (next version unless ``version``),
    moving ``latest`` only if the no-regression gate passes (or ``allow_regression``).

    Args:
        run_id: The training run.
        name: Registry model name.
        lake: Lake URL (default $SER_LAKE).
        registry: Registry URL (default $SER_REGISTRY).
        version: Explicit version number.
        calibration_clips: Train clips that calibrate static int8.
        gate_corpora: Corpora the gate compares on (default: the run's training corpora).
        gate_split: Split the gate compares on.
        allow_regression: Move latest even when the candidate is significantly worse.
        robustness: Also run the robustness suite on the file to be served before the
            publish (:func:`ser_pipeline.robustness_stage.publish_with_robustness`).

    Returns the publish summary (also the ``publish-<name>`` table artifact).
    """
    settings = get_settings(lake=lake, registry=registry)
    Registry(settings.registry, settings=settings)  # a bad URL fails before the export
    with tempfile.TemporaryDirectory(prefix="ser-export-") as out_dir:
        path = export_task(settings.lake, run_id, out_dir, calibration_clips)
        summary = publish_task(path, name=name, lake=settings.lake,
                               registry=settings.registry, version=version,
                               gate_corpora=gate_corpora, gate_split=gate_split,
                               allow_regression=allow_regression, robustness=robustness)
    publish_summary(summary, key=f"publish-{name}", title=f"published {summary['uri']}")
    return summary
