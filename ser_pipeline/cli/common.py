"""Shared CLI pieces: the Typer app, common options, summaries and errors.

Every command accepts ``--lake`` (and ``--registry`` where relevant) to override the
settings and ``--json`` for a machine-readable summary on stdout. Progress and tables go
to stderr/stdout through rich; errors are one line that says what to fix.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ser_pipeline.config import Settings, get_settings

app = typer.Typer(
    name="ser",
    help="Distil speech-emotion teachers into tiny, fast ONNX students.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

LakeOption = Annotated[
    str | None, typer.Option("--lake", help="Lake URL (local path or s3://); default $SER_LAKE.")
]
RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", help="Registry URL (local path or s3://); default $SER_REGISTRY."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print a machine-readable JSON summary on stdout.")
]
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        envvar="SER_ENGINE",
        help="'prefect' runs the Prefect flow (shows in the UI); 'local' calls the library "
        "directly with a bounded thread pool and no Prefect server.",
    ),
]


def settings_for(lake: str | None = None, registry: str | None = None, **more: Any) -> Settings:
    return get_settings(lake=lake, registry=registry, **more)


def fail(message: str, *, code: int = 2) -> NoReturn:
    """Print a one-line error to stderr and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def check_engine(engine: str) -> str:
    if engine not in ("prefect", "local"):
        fail(f"unknown --engine {engine!r}: use 'prefect' or 'local'")
    return engine


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return _jsonable(value.model_dump())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def emit(summary: Mapping[str, Any], *, title: str, as_json: bool) -> None:
    """Show a stage summary: a rich table, or JSON on stdout with ``--json``."""
    if as_json:
        sys.stdout.write(json.dumps(_jsonable(summary), indent=2, sort_keys=True) + "\n")
        return
    console.print(summary_table(summary, title=title))


def summary_table(summary: Mapping[str, Any], *, title: str) -> Table:
    table = Table(title=escape(title), show_header=True, header_style="bold")
    table.add_column("item")
    table.add_column("value", overflow="fold")
    for key, value in summary.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                table.add_row(escape(f"{key}.{sub_key}"), escape(_fmt(sub_value)))
        else:
            table.add_row(escape(str(key)), escape(_fmt(value)))
    return table


def add_plain_row(table: Table, *cells: Any) -> None:
    """Add a row whose cells print as written: rich would read ``[x=1]`` as markup."""
    table.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in cells))


def note(message: str) -> None:
    """A one-line notice on stderr (dynamic text printed as written, brackets included)."""
    err_console.print(f"[yellow]notice:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) if value else "-"
    return str(value)
