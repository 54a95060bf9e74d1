"""Named reports over the analyst database, and a self-contained HTML page of them.

A report is a file ``sql/reports/<name>.sql`` whose header comment documents it::

    -- Title line.
    --
    -- Longer description.
    --
    -- @param corpus  VARCHAR default NULL    What it filters.
    -- @param model   VARCHAR required        A required parameter.

Parameters are **bound** as DuckDB prepared-statement parameters (``$corpus``) and never
formatted into the SQL text, and reports run on a read-only connection, so a parameter
value is always data: ``'; DROP TABLE metrics; --`` is just a corpus nobody has.

The package: :mod:`~ser_pipeline.reports.catalog` (the report files, their parameters,
:func:`run_report`), :mod:`~ser_pipeline.reports.formats` (records, JSON, CSV),
:mod:`~ser_pipeline.reports.layouts` (readable layouts, the paper table's records),
:mod:`~ser_pipeline.reports.plots` and :mod:`~ser_pipeline.reports.page` (the HTML page)
and :mod:`~ser_pipeline.reports.errors`.
"""

from ser_pipeline.reports.catalog import (
    REPORTS_DIR,
    Param,
    Report,
    bind_params,
    convert_param,
    get_report,
    list_reports,
    load_report,
    parse_param,
    run_report,
)
from ser_pipeline.reports.errors import ReportError
from ser_pipeline.reports.formats import format_value, to_csv, to_json, to_records
from ser_pipeline.reports.layouts import paper_table_records, report_layouts, teacher_intervals
from ser_pipeline.reports.page import MAX_WIDTH_PX, write_html_report

__all__ = ["MAX_WIDTH_PX", "REPORTS_DIR", "Param", "Report", "ReportError", "bind_params",
           "convert_param", "format_value", "get_report", "list_reports", "load_report",
           "paper_table_records", "parse_param", "report_layouts", "run_report",
           "teacher_intervals", "to_csv", "to_json", "to_records", "write_html_report"]
