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
    from ser_pipeline.export import ExportError, ParityError, export_run
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
    perf = result.get("performance", {})
    summary = {
        "run_id": run, "student": result["student"], "out_dir": result["out_dir"],
        "fp32_bytes": result["files"]["model.onnx"]["bytes"],
        "int8_bytes": (result["files"].get("model.int8.onnx") or {}).get("bytes"),
        "quantization": result["quantization"]["chosen"],
        "int8_withheld": result["int8"]["reason"] if result["int8"]["withheld"] else None,
        "parity_measured_on": result["quantization"]["machine"]["kind"],
        "parity_torch_vs_fp32": result["parity"]["torch_vs_fp32"],
        "parity_int8_vs_fp32": result["parity"]["int8_vs_fp32"],
        "fp32_ms_per_5s": perf.get("fp32", {}).get("latency_ms"),
        "int8_ms_per_5s": perf.get("int8", {}).get("latency_ms"),
        "int8_peak_rss_increase_mb": perf.get("int8", {}).get("peak_rss_increase_mb"),
        "gflops_achieved_fp32": perf.get("fp32", {}).get("gflops_achieved"),
        "fp32_peak_gflops": perf.get("cpu_peak", {}).get("peak_gflops"),
        "license": result["license"]["id"],
    }
    if as_json:
        summary["export"] = result
    emit(summary, title=f"export {run}", as_json=as_json)
