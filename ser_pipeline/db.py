"""The analyst database: one DuckDB file built from the lake by the ``sql/*.sql`` files.

``build_db`` runs ``sql/*.sql`` in name order, in one transaction, so a failed refresh
leaves the previous file intact:

* small tables are **materialised** (``metrics``, ``robustness``, ``fairness``,
  ``comparisons``, ``runs``; ``models`` is kept across rebuilds and filled by the registry
  through :func:`upsert_model`), so anyone can query them with nothing but DuckDB,
  wherever the lake lives;
* large lake tables are **views** over the lake's Parquet (``audio`` without the audio
  bytes, ``human_labels``, ``teacher_labels``, ``splits``, ``predictions``,
  ``quarantine``).

How the lake location gets into SQL: the ``.sql`` files hold ``{{table}}`` placeholders
that :func:`render_sql` replaces with ``read_parquet('<lake>/<table>/part-*.parquet',
union_by_name = true)``. The lake URL comes from the settings (never from report
parameters); it is rejected if it holds glob characters and quoted as a SQL string
literal. A table with no part files yet renders as an empty relation with the table's
columns (and the build reports a notice), so its view returns 0 rows instead of failing.

Local lake: the views hold absolute paths and work from any DuckDB client. ``s3://``
lake: the build registers the lake's fsspec filesystem (``con.register_filesystem``;
httpfs cannot be downloaded here), the tables are materialised as above, and the views
work in connections that register the filesystem too: :func:`connect` (used by ``ser
report``) does. A plain ``duckdb`` process can still query the tables, and the views if it
loads ``httpfs`` with S3 credentials itself.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.lake import Lake, utcnow
from ser_pipeline.runs import list_runs, read_run_meta
from ser_pipeline.schemas import TABLES
from ser_pipeline.storage import Storage

log = logging.getLogger(__name__)

#: The ``sql/`` folder at the repository root (next to the package).
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
#: Lake tables the SQL files may reference as ``{{name}}``.
LAKE_TABLES = ("audio", "human_labels", "teacher_labels", "splits", "predictions",
               "quarantine", "drift", "robustness", "metrics", "fairness", "comparisons")
#: Lake tables materialised in the file (small: evaluation results); the others are views.
MATERIALISED = ("metrics", "robustness", "fairness", "comparisons")
#: DuckDB settings for every connection: never download or auto-load extensions.
DUCKDB_CONFIG = {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_GLOB_CHARS = set("*?[]{}")


class DatabaseError(RuntimeError):
    """The analyst database cannot be built or opened; the message says what to do."""


# -- SQL rendering ------------------------------------------------------------------------
def sql_literal(text: str) -> str:
    """A SQL string literal (single quotes doubled); only for settings, never user input.

    Examples:
        >>> sql_literal("/data/o'brien/lake")
        "'/data/o''brien/lake'"
    """
    if "\x00" in text:
        raise DatabaseError(f"refusing a NUL character in {text!r}")
    return "'" + text.replace("'", "''") + "'"


def _duckdb_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_int32(arrow_type):
        return "INTEGER"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "BLOB"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_struct(arrow_type):
        fields = ", ".join(f'"{f.name}" {_duckdb_type(f.type)}' for f in arrow_type)
        return f"STRUCT({fields})"
    raise DatabaseError(f"no DuckDB type mapping for Arrow type {arrow_type}")


def empty_relation(table: str) -> str:
    """A 0-row relation with the lake table's columns and types."""
    columns = ", ".join(f'CAST(NULL AS {_duckdb_type(f.type)}) AS "{f.name}"'
                        for f in TABLES[table])
    return f"(SELECT {columns} WHERE false)"


def lake_relation(lake: Lake, table: str) -> tuple[str, bool]:
    """``(sql, exists)``: a ``read_parquet`` over the table's part files, or an empty
    relation with its columns when it has none.

    The part files are unioned *by name* with the empty relation, so the result always has
    every column of the table's current schema: a column added to the schema later (say
    ``audio.gender`` or ``metrics.ccc_lo``) reads as NULL in older parts even when no part
    has it yet, and the views that name it still bind. DuckDB pushes projections through
    the union (the ``audio`` view never reads the audio bytes, checked with EXPLAIN).
    """
    if table not in TABLES:
        raise DatabaseError(f"unknown lake table {table!r}; known: {', '.join(TABLES)}")
    if not lake.parts(table):
        return empty_relation(table), False
    base = lake.storage.uri(table)
    if _GLOB_CHARS & set(base):
        raise DatabaseError(
            f"lake location {lake.url!r} contains one of {''.join(sorted(_GLOB_CHARS))}, "
            "which DuckDB would read as a file pattern; move the lake to a plain path"
        )
    parts = (f"read_parquet({sql_literal(base + '/part-*.parquet')}, union_by_name = true, "
             "hive_partitioning = false)")
    return f"(SELECT * FROM {empty_relation(table)} UNION ALL BY NAME SELECT * FROM {parts})", True


def render_sql(text: str, relations: dict[str, str]) -> str:
    """Replace ``{{table}}`` placeholders with the given relations (unknown ones fail).

    Examples:
        >>> render_sql("SELECT * FROM {{ audio }} AS a", {"audio": "read_parquet('x')"})
        "SELECT * FROM read_parquet('x') AS a"
    """
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in relations:
            raise DatabaseError(f"SQL placeholder {{{{{name}}}}} names no lake table; "
                                f"known: {', '.join(sorted(relations))}")
        return relations[name]

    return _PLACEHOLDER.sub(replace, text)


def sql_files(sql_dir: Path | None = None) -> list[Path]:
    """The schema files, in execution order (``sql/*.sql``; reports live apart)."""
    folder = Path(sql_dir or SQL_DIR)
    files = sorted(folder.glob("*.sql"))
    if not files:
        raise DatabaseError(f"no .sql files in {folder}; is the ser-pipeline checkout complete?")
    return files


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


# -- runs and models ----------------------------------------------------------------------
_RUN_COLUMNS = pa.schema([
    ("run_id", pa.string()), ("student", pa.string()), ("teacher_id", pa.string()),
    ("teacher_sha256", pa.string()), ("params", pa.int64()), ("best_dev_ccc", pa.float64()),
    ("best_checkpoint", pa.string()), ("split_name", pa.string()),
    ("corpora", pa.list_(pa.string())), ("created_at", pa.string()), ("meta", pa.string()),
])


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _runs_table(lake: Lake) -> tuple[pa.Table, list[str]]:
    rows, notices = [], []
    for run_id in list_runs(lake):
        try:
            info = read_run_meta(lake, run_id)
        except Exception as error:  # a broken run.json must not hide the other runs
            notices.append(f"run {run_id}: unreadable run.json ({error}); left out of 'runs'")
            continue
        best = info.best_dev_ccc
        rows.append({
            "run_id": run_id, "student": info.student, "teacher_id": info.teacher_id,
            "teacher_sha256": info.teacher_sha256, "params": info.params,
            "best_dev_ccc": None if best is None else best.get("mean"),
            "best_checkpoint": info.best_checkpoint, "split_name": info.split_name,
            "corpora": info.corpora,
            "created_at": None if info.created_at is None else info.created_at.isoformat(),
            "meta": json.dumps(info.to_dict(), sort_keys=True),
        })
    return pa.Table.from_pylist(rows, schema=_RUN_COLUMNS), notices


def upsert_model(db_path: str | Path, manifest: dict[str, Any]) -> None:
    """Insert or replace one published model (a registry manifest) in ``models``.

    ``name`` and ``version`` are required; ``student``, ``run_id``, ``teacher_id``,
    ``params``, ``size_bytes``, ``license``, ``published_at`` and ``uri`` are read from
    the manifest's top level or its ``provenance`` section when present. The full
    manifest is stored as JSON text. The file is created if it does not exist yet.
    """
    name, version = manifest.get("name"), manifest.get("version")
    if not name or not version:
        raise DatabaseError("a model manifest needs 'name' and 'version' to enter 'models'")
    provenance = manifest.get("provenance") if isinstance(manifest.get("provenance"),
                                                          dict) else {}

    def pick(*keys: str) -> Any:
        for key in keys:
            for source in (manifest, provenance):
                if source.get(key) not in (None, ""):
                    return source[key]
        return None

    license_value = pick("license")
    if isinstance(license_value, dict):
        license_value = license_value.get("id") or json.dumps(license_value, sort_keys=True)
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(db_path), config=DUCKDB_CONFIG) as con:
        con.execute((SQL_DIR / "15_models.sql").read_text())
        con.execute(
            "INSERT OR REPLACE INTO models VALUES ($name, $version, $uri, $student, $run_id, "
            "$teacher_id, $params, $size_bytes, $license, CAST($published_at AS TIMESTAMPTZ),"
            " $manifest)",
            {"name": str(name), "version": str(version),
             "uri": pick("uri") or f"registry://{name}@{version}",
             "student": pick("student"), "run_id": pick("run_id"),
             "teacher_id": pick("teacher_id"),
             "params": _int_or_none(pick("params", "model_params")),
             "size_bytes": _int_or_none(pick("size_bytes", "int8_bytes", "bytes"))
             or _served_bytes(manifest),
             "license": None if license_value is None else str(license_value),
             "published_at": pick("published_at", "created_at"),
             "manifest": json.dumps(manifest, sort_keys=True, default=str)},
        )


def _served_bytes(manifest: dict[str, Any]) -> int | None:
    """Size of the file a manifest serves by default (``serving.default_file``)."""
    serving, files = manifest.get("serving"), manifest.get("files")
    if not isinstance(serving, dict) or not isinstance(files, dict):
        return None
    entry = files.get(serving.get("default_file"))
    return _int_or_none(entry.get("bytes")) if isinstance(entry, dict) else None


# -- build --------------------------------------------------------------------------------
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
