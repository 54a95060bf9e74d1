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

The package: :mod:`~ser_pipeline.db.sql` (the ``.sql`` files, lake relations,
placeholders), :mod:`~ser_pipeline.db.connection` (:func:`connect`, :func:`lake_views`),
:mod:`~ser_pipeline.db.models` (the ``runs`` and ``models`` tables),
:mod:`~ser_pipeline.db.build` (:func:`build_db`) and :mod:`~ser_pipeline.db.errors`.
"""

from ser_pipeline.db.build import build_db
from ser_pipeline.db.connection import connect, lake_views, view_statements
from ser_pipeline.db.errors import DatabaseError
from ser_pipeline.db.models import upsert_model
from ser_pipeline.db.sql import (
    DUCKDB_CONFIG,
    LAKE_TABLES,
    MATERIALISED,
    SQL_DIR,
    empty_relation,
    lake_relation,
    render_sql,
    sql_files,
    sql_literal,
)

__all__ = ["DUCKDB_CONFIG", "LAKE_TABLES", "MATERIALISED", "SQL_DIR", "DatabaseError",
           "build_db", "connect", "empty_relation", "lake_relation", "lake_views",
           "render_sql", "sql_files", "sql_literal", "upsert_model", "view_statements"]
