"""Connections: the analyst file (:func:`connect`) and in-memory views over the lake
(:func:`lake_views`), both with the lake's filesystem registered for an ``s3://`` lake."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.db.errors import DatabaseError
from ser_pipeline.db.sql import _PLACEHOLDER, DUCKDB_CONFIG, SQL_DIR, lake_relation, render_sql
from ser_pipeline.lake import Lake
from ser_pipeline.storage import Storage


# -- connections --------------------------------------------------------------------------
def _register_lake_fs(con: duckdb.DuckDBPyConnection, lake_url: str,
                      settings: Settings) -> None:
    if lake_url.startswith("s3://"):
        con.register_filesystem(Storage(lake_url, settings=settings).fs)


def connect(db_path: str | Path, *, read_only: bool = True,
            settings: Settings | None = None) -> duckdb.DuckDBPyConnection:
    """Open an analyst database with extension downloads off and, for an ``s3://`` lake,
    the lake's filesystem registered so that the views work.

    Raises:
        DatabaseError: the file does not exist (build it with ``ser db build``).
    """
    path = Path(db_path)
    if not path.is_file():
        raise DatabaseError(f"no analyst database at {path}; build it with 'ser db build'"
                            f" (or pass --db PATH)")
    con = duckdb.connect(str(path), read_only=read_only, config=DUCKDB_CONFIG)
    try:
        rows = con.execute("SELECT lake FROM ser_build_info").fetchall()
        row = rows[0] if rows else None
    except duckdb.CatalogException:
        row = None  # a file not built by build_db (e.g. only models upserted)
    if row and row[0]:
        _register_lake_fs(con, row[0], settings or get_settings())
    return con


_VIEW_STATEMENT = re.compile(r"CREATE\s+OR\s+REPLACE\s+VIEW\s+(\w+)\s+AS\b", re.IGNORECASE)
_READS = re.compile(r"\b(?:FROM|JOIN)\s+(\w+)", re.IGNORECASE)


def view_statements(sql_dir: Path | None = None) -> dict[str, str]:
    """The ``CREATE OR REPLACE VIEW`` statements of ``20_views.sql`` by view name, with
    their ``{{table}}`` placeholders (statements end with ``;`` at the end of a line).

    Examples:
        >>> sorted(view_statements())[:3]
        ['audio', 'drift', 'human_labels']
    """
    text = (Path(sql_dir or SQL_DIR) / "20_views.sql").read_text()
    statements = {}
    for statement in re.split(r";[ \t]*(?:\n|$)", text):
        match = _VIEW_STATEMENT.search(statement)
        if match:
            statements[match.group(1)] = statement[match.start():].strip()
    return statements


def lake_views(lake: Lake, views: tuple[str, ...] | list[str], *,
               sql_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection holding ``views`` of ``sql/20_views.sql`` (and the
    views they read) over the lake, so library code asks the lake the same questions the
    analyst database answers, with the semantics written once (e.g. which teacher label of
    a clip is its current one). An ``s3://`` lake's filesystem is registered on it.

    Raises:
        DatabaseError: a view ``20_views.sql`` does not define.

    Examples:
        >>> import tempfile
        >>> con = lake_views(Lake.open(tempfile.mkdtemp()), ["latest_human_labels"])
        >>> con.execute("SELECT count(*) FROM latest_human_labels").fetchall()
        [(0,)]
    """
    statements = view_statements(sql_dir)
    ordered: list[str] = []

    def add(name: str) -> None:
        if name in ordered:
            return
        if name not in statements:
            raise DatabaseError(f"sql/20_views.sql defines no view {name!r}; it defines "
                                f"{', '.join(sorted(statements))}")
        for read in _READS.findall(statements[name]):
            if read in statements and read != name:
                add(read)
        ordered.append(name)

    for view in views:
        add(view)
    con = duckdb.connect(":memory:", config=DUCKDB_CONFIG)
    try:
        if lake.url.startswith("s3://"):
            con.register_filesystem(lake.storage.fs)
        for name in ordered:
            placeholders = set(_PLACEHOLDER.findall(statements[name]))
            relations = {table: lake_relation(lake, table)[0] for table in placeholders}
            con.execute(render_sql(statements[name], relations))
    except BaseException:
        con.close()
        raise
    return con
