"""Any other report: one table, or one ``column | value`` block per row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ser_pipeline.report_tables.cells import Block, Layout


def generic_layouts(columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                    title: str = "") -> list[Layout]:
    """Any report: one table, or, when it is too wide, one ``column | value`` block per
    row (every value printed, as ``psql``'s expanded display)."""
    from ser_pipeline.reports import format_value

    table = Block(title, tuple(columns),
                  tuple(tuple(format_value(v) for v in row) for row in rows),
                  left=len(columns))
    records = tuple(Block(f"{title} · row {i + 1}", ("column", "value"),
                          tuple((c, format_value(v)) for c, v in zip(columns, row,
                                                                     strict=True)),
                          left=2, fold_last=True) for i, row in enumerate(rows))
    return [Layout("table", (table,)), Layout("records", records)]
