"""The ``runs`` table (from each run's ``run.json``) and the ``models`` table (published
models, upserted by the registry)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ser_pipeline.db.errors import DatabaseError
from ser_pipeline.db.sql import DUCKDB_CONFIG, SQL_DIR
from ser_pipeline.lake import Lake
from ser_pipeline.runs import list_runs, read_run_meta

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
