"""``-o/--output table|json|csv``: one way every reporting command prints what it found.

A command builds a ``Report``: summary values and named tables of rows (plain values: str, int,
float, bool, None, datetime, Decimal, lists and dicts of those). ``render`` prints it:

- ``table`` (the default): the summary on one line, then each table with a header row (units in
  the headers), numbers aligned right, ``-`` for nothing, times in UTC;
- ``json``: one object, the summary's fields and each table as a list of objects; times ISO 8601
  in UTC, decimals as numbers, no Python reprs (docs/output.md documents every field);
- ``csv``: each table with its header row, tables separated by one empty line (the summary is
  left out: it is in the other two).

Usage::

    report = Report(summary={"parked": 3}, tables=[Table("apps", [Column("name", "name")], rows)])
    typer.echo(render(report, output))
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import typer


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


OutputOption = Annotated[
    Format,
    typer.Option("--output", "-o", help="table, json or csv (fields: docs/output.md)."),
]


@dataclass(frozen=True)
class Column:
    key: str  # the JSON field and CSV header
    header: str  # the table's header, with its unit
    show: Callable[[Any], str] | None = None  # the table cell; default: ``plain``
    in_table: bool = True  # False: too wide for the table; in JSON and CSV only


@dataclass(frozen=True)
class Table:
    name: str  # the JSON field holding its rows
    columns: Sequence[Column]
    rows: Sequence[Mapping[str, Any]]
    title: str = ""  # a line above it in the table output


@dataclass(frozen=True)
class Report:
    tables: Sequence[Table]
    # key -> (label, value); the table output prints "label: value" on one line.
    summary: Mapping[str, tuple[str, Any]] = field(default_factory=dict)


def iso(value: datetime) -> str:
    at = value if value.tzinfo else value.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plain(value: Any) -> str:
    """A value as a table or CSV cell."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        at = value if value.tzinfo else value.replace(tzinfo=UTC)
        return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    if isinstance(value, float | Decimal):
        return f"{float(value):g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"no JSON form for {type(value).__name__}")  # a reporting bug, not input


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return iso(value) if isinstance(value, datetime) else plain(value)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _table(full: Table) -> list[str]:
    table = Table(full.name, [c for c in full.columns if c.in_table], full.rows, full.title)
    cells = [
        [
            (c.show or plain)(row.get(c.key)) if row.get(c.key) is not None else "-"
            for c in table.columns
        ]
        for row in table.rows
    ]
    widths = [
        max([len(c.header), *(len(r[i]) for r in cells)]) for i, c in enumerate(table.columns)
    ]
    right = [any(_numeric(row.get(c.key)) for row in table.rows) for c in table.columns]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [table.title] if table.title else []
    out.append(line([c.header for c in table.columns]))
    out += [line(r) for r in cells]
    return out


def render(report: Report, fmt: Format) -> str:
    if fmt is Format.JSON:
        doc: dict[str, Any] = {k: _json_value(v) for k, (_, v) in report.summary.items()}
        for table in report.tables:
            doc[table.name] = [
                {c.key: _json_value(row.get(c.key)) for c in table.columns} for row in table.rows
            ]
        return json.dumps(doc, indent=2, ensure_ascii=False)
    if fmt is Format.CSV:
        buffer = io.StringIO()
        for i, table in enumerate(report.tables):
            if i:
                buffer.write("\n")
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow([c.key for c in table.columns])
            writer.writerows(
                [_csv_cell(row.get(c.key)) for c in table.columns] for row in table.rows
            )
        return buffer.getvalue().rstrip("\n")
    lines = []
    if report.summary:
        lines.append("   ".join(f"{label}: {plain(v)}" for label, v in report.summary.values()))
    for table in report.tables:
        if lines:
            lines.append("")
        lines += _table(table)
    return "\n".join(lines)
