"""The OUS workflow board: OUSs per state with the one waiting longest in each, and the commands
refused lately (``da workflow board`` and the console's /workflow page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[tuple[Any, ...]]

_BOARD = """
SELECT state, count(*), min(state_since),
       (array_agg(ous_uid ORDER BY state_since, ous_uid))[1]
FROM ous_status WHERE state IS NOT NULL GROUP BY state
"""


@dataclass(frozen=True, slots=True)
class Column:
    state: str
    count: int
    longest_since: datetime | None
    longest_uid: str | None


def board(conn: Conn, states: list[str]) -> list[Column]:
    """One column per state: the life-cycle's states in its order, then any other found."""
    rows = {str(r[0]): r[1:] for r in conn.execute(_BOARD).fetchall()}
    out = []
    for state in [*states, *sorted(set(rows) - set(states))]:
        count, since, uid = rows.get(state, (0, None, None))
        out.append(Column(state, int(count), since, None if uid is None else str(uid)))
    return out


@dataclass(frozen=True, slots=True)
class Rejection:
    at: datetime
    ous_uid: str
    operation: str
    value: str | None
    reason: str
    applied: bool  # a flagged move of a life-cycle that is not strict


def rejections(conn: Conn, since: datetime, limit: int = 50) -> tuple[int, list[Rejection]]:
    """How many commands were refused (or flagged) since ``since``, and the newest of them."""
    total = conn.execute("SELECT count(*) FROM ous_rejections WHERE at > %s", (since,)).fetchone()
    found = conn.execute(
        "SELECT at, ous_uid, operation, value, reason, applied FROM ous_rejections "
        "WHERE at > %s ORDER BY at DESC, command_id LIMIT %s",
        (since, limit),
    ).fetchall()
    return (int(total[0]) if total else 0), [Rejection(*r) for r in found]
