"""The named reports: ``sql/reports/<name>.sql`` files, their documented parameters, and
running one on a read-only connection with its parameters bound."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ser_pipeline.config import Settings
from ser_pipeline.db import SQL_DIR, connect
from ser_pipeline.reports.errors import ReportError

REPORTS_DIR = SQL_DIR / "reports"
_PARAM_LINE = re.compile(
    r"^--\s*@param\s+(?P<name>[A-Za-z_]\w*)\s+(?P<type>VARCHAR|INTEGER|DOUBLE|BOOLEAN)\s+"
    r"(?:default\s+(?P<default>NULL|'[^']*'|-?\d+(?:\.\d+)?|true|false)|(?P<required>required))"
    r"\s*(?P<help>.*)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    required: bool
    help: str


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    params: dict[str, Param] = field(default_factory=dict)
    sql: str = ""


def _default(literal: str | None, type_: str) -> Any:
    if literal is None or literal.upper() == "NULL":
        return None
    if literal.startswith("'"):
        return literal[1:-1]
    return convert_param(literal, type_, name="default")


def convert_param(value: Any, type_: str, *, name: str) -> Any:
    """Convert a (string) parameter value to its declared type, with a clear error."""
    if value is None or not isinstance(value, str):
        return value
    type_ = type_.upper()
    try:
        if type_ == "INTEGER":
            return int(value)
        if type_ == "DOUBLE":
            return float(value)
        if type_ == "BOOLEAN":
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
    except ValueError:
        raise ReportError(f"parameter {name}={value!r} is not a valid {type_}") from None
    return value


def load_report(path: Path) -> Report:
    """Parse a report file's header (title, description, ``@param`` lines)."""
    text = path.read_text()
    header = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    params: dict[str, Param] = {}
    prose: list[str] = []
    for line in header:
        match = _PARAM_LINE.match(line)
        if match:
            type_ = match["type"].upper()
            params[match["name"]] = Param(match["name"], type_,
                                          _default(match["default"], type_),
                                          bool(match["required"]), match["help"].strip())
        elif "@param" in line:
            raise ReportError(f"{path}: malformed @param line: {line!r}")
        else:
            prose.append(line[2:].strip())
    used = set(re.findall(r"\$([A-Za-z_]\w*)", text))
    if used != set(params):
        raise ReportError(f"{path}: parameters used ({sorted(used)}) and declared "
                          f"({sorted(params)}) differ")
    title = prose[0] if prose else path.stem
    description = " ".join(p for p in prose[1:] if p).strip()
    return Report(path.stem, title, description, params, text)


def list_reports(reports_dir: Path | None = None) -> dict[str, Report]:
    """Every named report, by name."""
    folder = Path(reports_dir or REPORTS_DIR)
    return {path.stem: load_report(path) for path in sorted(folder.glob("*.sql"))}


def get_report(name: str, reports_dir: Path | None = None) -> Report:
    reports = list_reports(reports_dir)
    if name not in reports:
        raise ReportError(f"no report named {name!r}; reports: {', '.join(reports)}")
    return reports[name]


def parse_param(text: str) -> tuple[str, str]:
    """``"key=value"`` -> ``("key", "value")`` (the value may contain ``=``).

    Examples:
        >>> parse_param("corpus=msp=podcast")
        ('corpus', 'msp=podcast')
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key):
        raise ReportError(f"malformed --param {text!r}: write it as NAME=VALUE, "
                          "e.g. --param corpus=msp-podcast")
    return key, value


def bind_params(report: Report, params: dict[str, Any] | None) -> dict[str, Any]:
    """Declared defaults overlaid with ``params``, type-converted; unknown or missing
    required parameters raise :class:`ReportError`."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(report.params))
    if unknown:
        allowed = ", ".join(f"{p.name} ({p.type})" for p in report.params.values()) or "none"
        raise ReportError(f"report {report.name!r} has no parameter {', '.join(unknown)}; "
                          f"its parameters: {allowed}")
    bound = {}
    for name, param in report.params.items():
        if name in params:
            bound[name] = convert_param(params[name], param.type, name=name)
        elif param.required:
            raise ReportError(f"report {report.name!r} needs --param {name}=... ({param.help})")
        else:
            bound[name] = param.default
    return bound


def run_report(db_path: str | Path, name: str, *, params: dict[str, Any] | None = None,
               settings: Settings | None = None) -> tuple[list[str], list[tuple]]:
    """Run a named report on a read-only connection; returns ``(columns, rows)``.

    Raises:
        ReportError: unknown report (lists the existing ones) or bad parameters.
        DatabaseError: the database file does not exist.
    """
    report = get_report(name)
    bound = bind_params(report, params)
    con = connect(db_path, read_only=True, settings=settings)
    try:
        result = con.execute(report.sql, bound)
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    finally:
        con.close()
    return columns, rows
