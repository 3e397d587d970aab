"""Parked events: a DE that needs something not known yet (usage
of content whose metadata has not arrived) waits in ``da_parked`` instead of being dropped or
failed. Its owner releases it, in the transaction that brings what it waited for, and handles it
then. One that waits longer than the owner's limit becomes a dead letter, with the reason, via
the outbox (a handler never talks to Kafka). ``da parked`` shows what waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from common import deadletter
from common.outbox import Cursor, OutboxMessage

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS da_parked (
    owner text NOT NULL,
    waiting_for text NOT NULL,
    identity text NOT NULL,
    key bytea,
    value bytea NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, waiting_for, identity)
);
CREATE INDEX IF NOT EXISTS da_parked_by_age ON da_parked (owner, parked_at);
"""
REASON = "parked_too_long"


@dataclass(frozen=True, slots=True)
class Parked:
    waiting_for: str
    key: bytes | None
    value: bytes
    parked_at: datetime


def park(
    cur: Cursor, owner: str, waiting_for: str, identity: str, key: bytes | None, value: bytes
) -> None:
    """Idempotent: a duplicate of a parked event is parked once."""
    cur.execute(
        "INSERT INTO da_parked (owner, waiting_for, identity, key, value) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (owner, waiting_for, identity, key, value),
    )


def release(cur: Cursor, owner: str, waiting_for: list[str]) -> list[Parked]:
    """Take out everything that waited for any of ``waiting_for``, oldest first."""
    if not waiting_for:
        return []
    cur.execute(
        "DELETE FROM da_parked WHERE owner = %s AND waiting_for = ANY(%s) "
        "RETURNING waiting_for, key, value, parked_at",
        (owner, waiting_for),
    )
    return sorted((Parked(*row) for row in cur.fetchall()), key=lambda p: p.parked_at)  # type: ignore[arg-type]


def expire(
    cur: Cursor, owner: str, stage: str, dead_letter_topic: str, max_age_s: float
) -> list[OutboxMessage]:
    """Take out what waited longer than ``max_age_s``; returns their dead letters."""
    cur.execute(
        "DELETE FROM da_parked WHERE owner = %s AND parked_at < now() - make_interval(secs => %s) "
        "RETURNING waiting_for, key, value, parked_at",
        (owner, max_age_s),
    )
    now = datetime.now(UTC)
    letters = []
    for row in cur.fetchall():
        p = Parked(*row)  # type: ignore[arg-type]
        detail = f"waited since {p.parked_at.isoformat()} for {p.waiting_for}, which never came"
        dl = deadletter.build(
            stage, p.key, bytes(p.value), REASON, detail, field="waiting_for", now=now
        )
        letters.append(OutboxMessage(dead_letter_topic, dl.key, dl.value or b"", tuple(dl.headers)))
    return letters


@dataclass(frozen=True, slots=True)
class ParkedSummary:
    owner: str
    count: int
    oldest: datetime
    waiting_for: int  # distinct things awaited


def summary(conn: psycopg.Connection[tuple[object, ...]]) -> list[ParkedSummary]:
    rows = conn.execute(
        "SELECT owner, count(*), min(parked_at), count(DISTINCT waiting_for) FROM da_parked "
        "GROUP BY owner ORDER BY owner"
    ).fetchall()
    return [ParkedSummary(str(o), int(str(n)), t, int(str(w))) for o, n, t, w in rows]  # type: ignore[arg-type]


def count(conn: psycopg.Connection[tuple[object, ...]], owner: str) -> int:
    row = conn.execute("SELECT count(*) FROM da_parked WHERE owner = %s", (owner,)).fetchone()
    return int(str(row[0])) if row else 0
