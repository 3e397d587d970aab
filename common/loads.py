"""Initial loads (``da load``) and their completion marks, in PostgreSQL.

A load is a bulk file replayed onto the ingest topic beside live traffic. ``da_loads`` keeps one
row per load (its file, how many events it holds and has sent, when it started, finished sending
and was done); ``da_load_offsets`` keeps, per topic partition, where the topic ended when the
load began (``start``) and its completion mark (``mark``): for the ingest topic, its end right
after the load's last write; for every later topic, its end at the moment every stage writing it
had consumed up to its own marks. A stage is done with the load once it has consumed its inputs
up to their marks (``cli.load_model`` decides that; whoever reads the progress records the marks
it finds crossed, so they never depend on one process staying up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

Key = tuple[str, int]
Conn = psycopg.Connection[tuple[object, ...]]

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS da_loads (
    id bigserial PRIMARY KEY,
    file text NOT NULL,
    events bigint NOT NULL,
    sent bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    done_at timestamptz
);
CREATE TABLE IF NOT EXISTS da_load_offsets (
    load_id bigint NOT NULL REFERENCES da_loads (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('start', 'mark')),
    topic text NOT NULL,
    partition integer NOT NULL,
    end_offset bigint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (load_id, kind, topic, partition)
);
"""


@dataclass(frozen=True)
class Load:
    id: int
    file: str
    events: int
    sent: int
    started_at: datetime
    sent_at: datetime | None
    done_at: datetime | None
    start: dict[Key, int] = field(default_factory=dict)
    marks: dict[Key, int] = field(default_factory=dict)


def begin(conn: Conn, file: str, events: int, start: dict[Key, int]) -> int:
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO da_loads (file, events) VALUES (%s, %s) RETURNING id", (file, events)
        ).fetchone()
        load_id = int(str(row[0])) if row else 0
        _offsets(conn, load_id, "start", start)
    return load_id


def progress_sent(conn: Conn, load_id: int, sent: int) -> None:
    conn.execute("UPDATE da_loads SET sent = %s WHERE id = %s", (sent, load_id))


def sent(conn: Conn, load_id: int, count: int, ingest_ends: dict[Key, int]) -> None:
    """The load's last write is acknowledged: its ingest topic's ends are the first mark."""
    with conn.transaction():
        conn.execute(
            "UPDATE da_loads SET sent = %s, sent_at = now() WHERE id = %s", (count, load_id)
        )
        _offsets(conn, load_id, "mark", ingest_ends)


def mark(conn: Conn, load_id: int, marks: dict[Key, int], done: bool) -> None:
    """Record marks newly crossed (the first recorded wins); ``done``: every stage is."""
    with conn.transaction():
        _offsets(conn, load_id, "mark", marks)
        if done:
            conn.execute(
                "UPDATE da_loads SET done_at = now() WHERE id = %s AND done_at IS NULL",
                (load_id,),
            )


def _offsets(conn: Conn, load_id: int, kind: str, offsets: dict[Key, int]) -> None:
    if not offsets:
        return
    keys = sorted(offsets)
    conn.execute(
        "INSERT INTO da_load_offsets (load_id, kind, topic, partition, end_offset) "
        "SELECT %s, %s, * FROM unnest(%s::text[], %s::int[], %s::bigint[]) ON CONFLICT DO NOTHING",
        (load_id, kind, [t for t, _ in keys], [p for _, p in keys], [offsets[k] for k in keys]),
    )


def latest(conn: Conn) -> Load | None:
    """The most recent load with its offsets, or None when there was none."""
    row = conn.execute(
        "SELECT id, file, events, sent, started_at, sent_at, done_at FROM da_loads "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    load_id = int(str(row[0]))
    offsets: dict[str, dict[Key, int]] = {"start": {}, "mark": {}}
    for kind, topic, partition, end in conn.execute(
        "SELECT kind, topic, partition, end_offset FROM da_load_offsets WHERE load_id = %s",
        (load_id,),
    ).fetchall():
        offsets[str(kind)][(str(topic), int(str(partition)))] = int(str(end))
    return Load(
        load_id,
        str(row[1]),
        int(str(row[2])),
        int(str(row[3])),
        row[4],  # type: ignore[arg-type]
        row[5],  # type: ignore[arg-type]
        row[6],  # type: ignore[arg-type]
        offsets["start"],
        offsets["mark"],
    )


def outbox_behind(conn: Conn, before: datetime) -> set[str]:
    """Owners with outbox rows committed before ``before``: what they emitted is not on their
    topics yet, so those topics' ends do not hold it."""
    rows = conn.execute(
        "SELECT DISTINCT owner FROM da_outbox WHERE created_at < %s", (before,)
    ).fetchall()
    return {str(r[0]) for r in rows}


def db_now(conn: Conn) -> datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    if row is None or not isinstance(row[0], datetime):
        raise RuntimeError("PostgreSQL gave no time")
    return row[0]
