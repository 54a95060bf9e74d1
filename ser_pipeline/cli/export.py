"""``ser export``: a run's best checkpoint to ONNX fp32 + int8, parity-checked."""

from __future__ import annotations

from typing import Annotated

import typer

from ser_pipeline.cli.common import JsonOption, LakeOption, app, emit, fail, settings_for


@app.command("export")
def export_command(
    run: Annotated[str, typer.Option("--run", help="Training run id (see 'ser train').")],
    out: Annotated[str | None, typer.Option(
        "--out", help="Output folder (default ./exports/RUN_ID).")] = None,
    calibration_clips: Annotated[int, typer.Option(
        "--calibration-clips", min=1, help="Train clips that calibrate static int8.")] = 32,
    lake: LakeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export to ONNX (fp32 + int8), check parity on dev clips, measure size and speed.

    An int8 model that fails parity is withheld (the export still succeeds, fp32 only).
    """
    from ser_pipeline.export import FP32_FILE, INT8_FILE, ExportError, ParityError, export_run
    from ser_pipeline.lake import Lake
    from ser_pipeline.runs import RunError

    settings = settings_for(lake=lake)
    out_dir = out or f"exports/{run}"
    try:
        result = export_run(Lake.open(settings.lake, settings=settings), run, out_dir=out_dir,
                            calibration_clips=calibration_clips)
    except ParityError as error:
        fail(f"{error} (files for inspection in {out_dir})")
    except (RunError, ExportError, ValueError) as error:
        fail(str(error))
    perf, run_info = result.performance, result.run
    int8_file = result.files.get(INT8_FILE)
    summary = {
        "run_id": run, "student": run_info.provenance.student if run_info else None,
        "out_dir": result.out_dir,
        "fp32_bytes": result.files[FP32_FILE].bytes,
        "int8_bytes": int8_file.bytes if int8_file else None,
        "quantization": result.quantization.chosen,
        "int8_withheld": result.int8.reason if result.int8.withheld else None,
        "parity_measured_on": result.machine.kind,
        "parity_torch_vs_fp32": result.parity.torch_vs_fp32,
        "parity_int8_vs_fp32": result.parity.int8_vs_fp32,
        "fp32_ms_per_5s": perf.fp32.latency_ms if perf else None,
        "int8_ms_per_5s": perf.int8.latency_ms if perf and perf.int8 else None,
        "int8_peak_rss_increase_mb": perf.int8.peak_rss_increase_mb
        if perf and perf.int8 else None,
        "gflops_achieved_fp32": perf.fp32.gflops_achieved if perf else None,
        "fp32_peak_gflops": perf.cpu_peak.peak_gflops if perf else None,
        "license": run_info.license.id if run_info else None,
    }
    if as_json:
        summary["export"] = result.model_dump(mode="json", by_alias=True)
    emit(summary, title=f"export {run}", as_json=as_json)
