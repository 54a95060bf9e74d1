"""A report's rows as records, JSON, CSV, and single values as text."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def to_records(columns: list[str], rows: list[tuple]) -> list[dict]:
    return [{c: _jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def to_json(columns: list[str], rows: list[tuple]) -> str:
    return json.dumps(to_records(columns, rows), indent=2)


def to_csv(columns: list[str], rows: list[tuple]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_jsonable(v) for v in row] for row in rows])
    return buffer.getvalue()


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)
