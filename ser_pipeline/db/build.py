"""Building the analyst file: every ``sql/*.sql`` in one transaction."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.db.connection import _register_lake_fs
from ser_pipeline.db.errors import DatabaseError
from ser_pipeline.db.models import _runs_table
from ser_pipeline.db.sql import (
    DUCKDB_CONFIG,
    LAKE_TABLES,
    MATERIALISED,
    lake_relation,
    render_sql,
    sql_files,
)
from ser_pipeline.lake import Lake, utcnow

#: The logger keeps the name it had when ``ser_pipeline.db`` was one module.
log = logging.getLogger("ser_pipeline.db")


def build_db(lake: Lake, *, out: str | Path | None = None, settings: Settings | None = None,
             sql_dir: str | Path | None = None) -> dict:
    """Create or refresh the analyst DuckDB file from the lake.

    Args:
        lake: The lake to describe (local or ``s3://``).
        out: The DuckDB file (default ``settings.db``, ``./ser.duckdb``); always local.
        settings: Settings (S3 credentials, default ``db``).
        sql_dir: Folder of the schema ``.sql`` files (default the repository's ``sql/``).

    Returns:
        Summary: the file, lake, row counts per table/view, and ``notices`` (e.g. lake
        tables without parts, whose views are empty).
    """
    settings = settings or get_settings()
    out_path = Path(out or settings.db).expanduser().resolve()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    relations, notices = {}, []
    for table in LAKE_TABLES:
        relations[table], exists = lake_relation(lake, table)
        if not exists:
            kind = "table" if table in MATERIALISED else "view"
            notices.append(f"lake table {table!r} has no part files yet in {lake.url}: "
                           f"{kind} {table!r} returns 0 rows (rebuild after it appears)")
    runs, run_notices = _runs_table(lake)
    notices.extend(run_notices)
    files = sql_files(Path(sql_dir) if sql_dir else None)
    scripts = [(path.name, render_sql(path.read_text(), relations)) for path in files]
    try:
        con = duckdb.connect(str(out_path), config=DUCKDB_CONFIG)
    except duckdb.Error as error:
        raise DatabaseError(f"cannot open {out_path} for writing ({str(error).splitlines()[0]})"
                            "; close other programs using it (DuckDB allows one writer) or "
                            "pass --out elsewhere") from None
    try:
        _register_lake_fs(con, lake.url, settings)
        con.register("_stage_runs", runs)
        con.execute("BEGIN TRANSACTION")
        try:
            for name, script in scripts:
                try:
                    con.execute(script)
                except duckdb.Error as error:
                    raise DatabaseError(f"sql/{name} failed: {error}") from None
            con.execute("CREATE OR REPLACE TABLE ser_build_info AS SELECT $lake AS lake, "
                        "$built_at AS built_at, $files AS sql_files",
                        {"lake": lake.url, "built_at": utcnow(),
                         "files": [name for name, _ in scripts]})
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.unregister("_stage_runs")
        counts = {name: con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
                  for name in ("runs", "models", *LAKE_TABLES)}
    finally:
        con.close()
    for notice in notices:
        log.warning(notice)
    return {"db": str(out_path), "lake": lake.url, "sql_files": [n for n, _ in scripts],
            "rows": counts, "notices": notices}
