"""``ser report``: run a named SQL report, or write the HTML page."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ser_pipeline.cli.common import (
    add_plain_row,
    app,
    console,
    fail,
    settings_for,
)


@app.command("report")
def report_command(
    name: Annotated[str | None, typer.Argument(help="Report name; omit to list them.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, csv or json.")
                             ] = "table",
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

    from ser_pipeline.db import DatabaseError
    from ser_pipeline.reports import (
        ReportError,
        format_value,
        list_reports,
        parse_param,
        run_report,
        to_csv,
        to_json,
        write_html_report,
    )

    settings = settings_for()
    db_path = db or settings.db
    if output_format not in ("table", "csv", "json"):
        fail(f"unknown --format {output_format!r}: use table, csv or json")
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
        columns, rows = run_report(db_path, name, params=params, settings=settings)
    except (ReportError, DatabaseError) as error:
        fail(str(error))
    except duckdb.Error as error:
        fail(f"report {name!r} failed: {str(error).splitlines()[0]}")
    if output_format == "json":
        sys.stdout.write(to_json(columns, rows) + "\n")
    elif output_format == "csv":
        sys.stdout.write(to_csv(columns, rows))
    else:
        table = Table(title=name, header_style="bold")
        for column in columns:
            table.add_column(column)
        for row in rows:
            add_plain_row(table, *(format_value(v) for v in row))
        console.print(table)
