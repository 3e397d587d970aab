"""The query API's reads: events and errors, filtered, in time order, a page at a time.

A page is ordered by (time, id) and the cursor is the last row's (time, id), so the next page is
an index range scan from there (``WHERE (t, id) > (cursor)``), however deep the client goes;
OFFSET would rescan every earlier row. Times are inclusive and ISO 8601; without an offset,
UTC.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from psycopg import sql


class BadQuery(Exception):
    """A malformed parameter: answered 400, naming it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


def parse_time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise BadQuery(field, f"{field}={value!r} is not an ISO 8601 date-time") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


@dataclass(frozen=True)
class Table:
    name: str
    owner: str  # the DEP that keeps it: the table lives in that DEP's database
    time: str  # the time column: filter and first sort key
    key: str  # the unique tie-breaker: second sort key
    key_type: type[str] | type[int]
    columns: tuple[str, ...]
    # jsonb columns, read as their text and passed through untouched: the API never parses a
    # stored payload (cheaper, and no payload is too deep for it to answer).
    json: tuple[str, ...] = ()


EVENTS = Table(
    "web_events",
    "web-events",
    "occurred_at",
    "event_id",
    str,
    ("event_id", "session_id", "app", "category", "name", "occurred_at", "received_at", "data"),
    json=("data",),
)
ERRORS = Table(
    "collector_errors",
    "collector-errors",
    "failed_at",
    "id",
    int,
    (
        "id",
        "stage",
        "app",
        "status",
        "reason",
        "detail",
        "field",
        "body",
        "body_bytes",
        "failed_at",
    ),
)
TABLES = (EVENTS, ERRORS)
_BIGINT = range(-(2**63), 2**63)
# The cursor of a page: which table, and the last row's time and key. Typed, so that a forged
# one is a 400 here rather than a type error in the database.
_Cursor = tuple[str, datetime, str | int]
_cursor_decoder = msgspec.json.Decoder(_Cursor)


def encode_cursor(table: Table, at: Any, key: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([table.name, at, key])).decode()


def decode_cursor(table: Table, cursor: str) -> tuple[datetime, str | int]:
    try:
        name, at, key = _cursor_decoder.decode(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, msgspec.DecodeError):  # binascii.Error is a ValueError
        raise BadQuery("cursor", "cursor is not one this API handed out") from None
    if name != table.name or type(key) is not table.key_type:
        raise BadQuery("cursor", "cursor belongs to another endpoint") from None
    if isinstance(key, int) and key not in _BIGINT:
        raise BadQuery("cursor", "cursor is not one this API handed out") from None
    return at, key


def _text(value: str, field: str) -> str:
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL, so no stored value equals it; psycopg would refuse it.
        raise BadQuery(field, f"{field} contains a NUL character")
    return value


async def page(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
    table: Table,
    equal: dict[str, str | None],
    since: str | None,
    until: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows where each given ``equal`` column matches and the time is in [since, until], after
    the cursor; and the cursor of the next page (None at the end)."""
    if not 1 <= limit <= 1000:
        raise BadQuery("limit", "limit must be 1..1000")
    t, k = sql.Identifier(table.time), sql.Identifier(table.key)
    where: list[sql.Composable] = []
    args: list[Any] = []
    for column, value in equal.items():
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            args.append(_text(value, column))
    for bound, op in ((parse_time(since, "since"), ">="), (parse_time(until, "until"), "<=")):
        if bound is not None:
            where.append(sql.SQL("{} {} %s").format(t, sql.SQL(op)))
            args.append(bound)
    if cursor is not None:
        where.append(sql.SQL("({}, {}) > (%s, %s)").format(t, k))
        args.extend(decode_cursor(table, cursor))
    query = sql.SQL("SELECT {} FROM {} {} ORDER BY {}, {} LIMIT %s").format(
        sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(c)) if c in table.json else sql.Identifier(c)
            for c in table.columns
        ),
        sql.Identifier(table.name),
        sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        t,
        k,
    )
    cur = await conn.execute(query, [*args, limit + 1])
    rows: Sequence[tuple[object, ...]] = await cur.fetchall()
    items = [dict(zip(table.columns, r, strict=True)) for r in rows[:limit]]
    for item in items:
        for c in table.json:
            item[c] = msgspec.Raw(str(item[c]).encode())
    more = len(rows) > limit
    last = items[-1] if items else None
    next_cursor = encode_cursor(table, last[table.time], last[table.key]) if more and last else None
    return items, next_cursor
