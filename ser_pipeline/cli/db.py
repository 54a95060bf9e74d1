"""``ser db build``: create or refresh the analyst DuckDB file from the lake."""

from __future__ import annotations

from typing import Annotated

import typer

from ser_pipeline.cli import common
from ser_pipeline.cli.common import app, emit, fail, note

db_app = typer.Typer(help="The analyst DuckDB database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("build")
def build_command(
    out: Annotated[str | None, typer.Option("--out", help="DuckDB file to write "
                                            "(default $SER_DB or ./ser.duckdb).")] = None,
    lake: common.LakeOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Create or refresh the DuckDB file: metrics/runs/models tables, views over the lake."""
    import duckdb

    from ser_pipeline.db import DatabaseError, build_db
    from ser_pipeline.lake import Lake

    settings = common.settings_for(lake)
    try:
        summary = build_db(Lake.open(settings=settings), out=out or settings.db,
                           settings=settings)
    except (DatabaseError, duckdb.Error, OSError) as error:
        fail(str(error).splitlines()[0])
    if not as_json:
        for notice in summary["notices"]:
            note(notice)
    emit(summary if as_json else {k: v for k, v in summary.items() if k != "notices"},
         title="db build", as_json=as_json)
