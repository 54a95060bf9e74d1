"""``ser predict``: arousal, dominance, valence for audio files."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ser_pipeline.cli import common
from ser_pipeline.cli.common import add_plain_row, app, console, fail, note


@app.command("predict")
def predict_command(
    model_uri: Annotated[str, typer.Argument(
        help="registry://NAME[@VERSION|latest][#int8|#fp32] or a path to an .onnx "
        "file/folder. Without #int8/#fp32 the file the manifest chose at publish (the "
        "faster one) is served, with a one-line note.")],
    inputs: Annotated[list[str], typer.Argument(help="Audio files or folders.")],
    window_s: Annotated[float, typer.Option("--window-s", help="Window for long files.")] = 10.0,
    overlap_s: Annotated[float, typer.Option("--overlap-s", help="Window overlap.")] = 2.0,
    threads: Annotated[int, typer.Option(
        "--threads", min=1, help="ONNX Runtime threads (default 1, the paper's one-core "
        "setting).")] = 1,
    registry: common.RegistryOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Predict A/D/V per file (exit code 1 if any file failed)."""
    from ser_pipeline.onnx_model import OnnxModelError
    from ser_pipeline.predict import predict_files
    from ser_pipeline.registry import RegistryError, resolve_model

    settings = common.settings_for(registry=registry)
    try:
        model_path, notice = resolve_model(model_uri, settings=settings, registry=registry)
        if notice:
            note(notice)
        rows = predict_files(str(model_path), inputs, settings=settings,
                             window_s=window_s, overlap_s=overlap_s, threads=threads)
    except (RegistryError, OnnxModelError, ValueError) as error:
        fail(str(error))
    if not rows:
        fail(f"no audio files found in {', '.join(inputs)}")
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        table = Table(title=escape(f"predictions ({model_uri})"), header_style="bold")
        for column in ("file", "arousal", "dominance", "valence", "seconds", "windows",
                       "error"):
            table.add_column(column, overflow="fold")
        for row in rows:
            def cell(value: float | None) -> str:
                return "-" if value is None else f"{value:.3f}"
            add_plain_row(table, row["file"], cell(row["arousal"]), cell(row["dominance"]),
                          cell(row["valence"]),
                          "-" if row["duration_s"] is None else f"{row['duration_s']:.1f}",
                          str(row["n_windows"] or "-"), row["error"] or "")
        console.print(table)
    if any(row["error"] for row in rows):
        raise typer.Exit(1)
