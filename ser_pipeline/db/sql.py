"""The SQL side: where the ``.sql`` files live, the lake tables as DuckDB relations, and
``{{table}}`` placeholders rendered into them."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from ser_pipeline.db.errors import DatabaseError
from ser_pipeline.lake import Lake
from ser_pipeline.schemas import TABLES

#: The ``sql/`` folder at the repository root (next to the package).
SQL_DIR = Path(__file__).resolve().parent.parent.parent / "sql"
#: Lake tables the SQL files may reference as ``{{name}}``.
LAKE_TABLES = ("audio", "human_labels", "teacher_labels", "splits", "predictions",
               "quarantine", "drift", "robustness", "metrics", "fairness", "comparisons")
#: Lake tables materialised in the file (small: evaluation results); the others are views.
MATERIALISED = ("metrics", "robustness", "fairness", "comparisons")
#: DuckDB settings for every connection: never download or auto-load extensions.
DUCKDB_CONFIG = {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_GLOB_CHARS = set("*?[]{}")


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
