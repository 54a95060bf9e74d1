"""``ser report``: run a named SQL report, or write the HTML page."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ser_pipeline.cli import common
from ser_pipeline.cli.common import add_plain_row, app, console, fail, note


@app.command("report")
def report_command(
    name: Annotated[str | None, typer.Argument(help="Report name; omit to list them.")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="table (fits the terminal: a compact layout is chosen when the "
        "full one is too wide), markdown, csv or json.")] = "table",
    wide: Annotated[bool, typer.Option("--wide", help="table: the full layout whatever "
                                       "the terminal's width, with full model ids.")
                    ] = False,
    param: Annotated[list[str] | None, typer.Option("--param", help="NAME=VALUE (repeat); "
                                                    "bound, never pasted into SQL.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="DuckDB file (default $SER_DB or "
                                           "./ser.duckdb).")] = None,
    html: Annotated[str | None, typer.Option("--html", help="Write the HTML report (leaderboard"
                                             " + plots) to this file.")] = None,
    split: Annotated[str, typer.Option(help="Split for --html.")] = "test",
    reference: Annotated[str, typer.Option(help="Reference for --html: teacher or human.")
                         ] = "teacher",
) -> None:
    """Run a named report over the analyst database (see 'ser db build')."""
    import duckdb

    from ser_pipeline import report_tables
    from ser_pipeline.db import DatabaseError
    from ser_pipeline.reports import (
        ReportError,
        list_reports,
        paper_table_records,
        parse_param,
        report_layouts,
        run_report,
        to_csv,
        to_json,
        write_html_report,
    )

    settings = common.settings_for()
    db_path = db or settings.db
    if output_format not in ("table", "markdown", "csv", "json"):
        fail(f"unknown --format {output_format!r}: use table, markdown, csv or json")
    try:
        if html:
            if name:
                fail("--html writes the whole page; drop the report name")
            summary = write_html_report(db_path, html, split=split, reference=reference,
                                        settings=settings)
            console.print(Text(f"wrote {summary['html']} ({summary['images']} plots, "
                               f"{summary['leaderboard_rows']} leaderboard rows)"))
            return
        if name is None:
            table = Table(title="reports (ser report NAME --param k=v)", header_style="bold")
            for column in ("name", "description", "parameters"):
                table.add_column(column, overflow="fold")
            for report in list_reports().values():
                add_plain_row(table, report.name, report.title, ", ".join(
                    f"{p.name}={'required' if p.required else p.default}"
                    for p in report.params.values()))
            console.print(table)
            return
        params = dict(parse_param(text) for text in param or [])
        if name == "paper_table":  # with the teacher rows' intervals (a bootstrap)
            records = paper_table_records(db_path, params=params, settings=settings)
            columns = list(records[0]) if records else []
            rows = [tuple(r.values()) for r in records]
        else:
            columns, rows = run_report(db_path, name, params=params, settings=settings)
    except (ReportError, DatabaseError) as error:
        fail(str(error))
    except duckdb.Error as error:
        fail(f"report {name!r} failed: {str(error).splitlines()[0]}")
    if output_format == "json":
        sys.stdout.write(to_json(columns, rows) + "\n")
        return
    if output_format == "csv":
        sys.stdout.write(to_csv(columns, rows))
        return
    if not rows:
        note(f"report {name!r} returned no rows")
        return
    layouts = report_layouts(name, columns, rows, wide=wide)
    if output_format == "markdown":
        sys.stdout.write(report_tables.markdown(layouts) + "\n")
        return
    layout = layouts[0] if wide else report_tables.fit(layouts, console.width)
    if wide:
        width = max(console.width, report_tables.layout_width(layout))
        report_tables.print_layout(layout, Console(width=width, soft_wrap=False))
    else:
        report_tables.print_layout(layout, console)
