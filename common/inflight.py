"""The crash-loop guard's record of what was in flight (``da_inflight``, one row per group and
partition), kept in PostgreSQL so that it outlives whatever kills the process (``common.guard``
says how it is used). A database that cannot be reached leaves the guard blind, never the stage
stopped: reads and writes then answer None/False, and the connection is tried again after
``RETRY_DB_AFTER_S``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

log = logging.getLogger(__name__)
RETRY_DB_AFTER_S = 30.0

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS da_inflight (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    first_offset bigint NOT NULL,
    last_offset bigint NOT NULL,
    attempts integer NOT NULL,
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
"""
Connect = Callable[[], psycopg.Connection[tuple[object, ...]]]
# Every partition of a batch in one statement: one round trip per batch.
_UPSERT = """
INSERT INTO da_inflight AS f (consumer_group, topic, partition, first_offset, last_offset,
    attempts, last_error)
SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[], %s::int[], %s::text[])
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET
    first_offset = excluded.first_offset, last_offset = excluded.last_offset,
    attempts = excluded.attempts, last_error = excluded.last_error, updated_at = now()
"""


@dataclass
class InFlight:
    first: int
    last: int
    attempts: int
    error: str | None = None


class InFlightTable:
    """One group's rows of ``da_inflight``."""

    def __init__(self, group: str, connect: Connect) -> None:
        self.group = group
        self._connect = connect
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._down_since: float | None = None

    def read(self) -> dict[tuple[str, int], InFlight] | None:
        """The group's records by (topic, partition); None when the database is unreachable."""
        rows = self._query(
            "SELECT topic, partition, first_offset, last_offset, attempts, last_error "
            "FROM da_inflight WHERE consumer_group = %s",
            (self.group,),
        )
        if rows is None:
            return None
        return {
            (str(t), int(str(p))): InFlight(int(str(f)), int(str(la)), int(str(a)), e)  # type: ignore[arg-type]
            for t, p, f, la, a, e in rows
        }

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def write(self, records: dict[tuple[str, int], InFlight]) -> bool:
        if not records:
            return True
        rows = [
            (t, p, r.first, r.last, r.attempts, r.error) for (t, p), r in sorted(records.items())
        ]
        return self._execute(_UPSERT, (self.group, *[list(col) for col in zip(*rows, strict=True)]))

    def _db(self) -> psycopg.Connection[tuple[object, ...]] | None:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        if self._down_since is not None and time.monotonic() - self._down_since < RETRY_DB_AFTER_S:
            return None
        try:
            self._conn = self._connect()
            # What the guard records must outlive this process, not the database server: a
            # commit that waits for the disk would add a flush to every batch of every stage
            # for a case (the server crashing too, within a fraction of a second) in which
            # the guard loses at most one attempt and quarantines one crash later.
            self._conn.execute("SET synchronous_commit = off")
            self._conn.execute(TABLE_SQL)
            self._down_since = None
            return self._conn
        except psycopg.Error as exc:
            self._unreachable(exc)
            return None

    def _unreachable(self, exc: psycopg.Error) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._down_since = time.monotonic()
        log.warning("crash-loop guard: database unreachable, batches go unguarded: %s", exc)

    def _query(self, query: str, params: tuple[object, ...]) -> list[tuple[object, ...]] | None:
        conn = self._db()
        if conn is None:
            return None
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.Error as exc:
            self._unreachable(exc)
            return None

    def _execute(self, query: str, params: tuple[object, ...]) -> bool:
        conn = self._db()
        if conn is None:
            return False
        try:
            conn.execute(query, params)
            return True
        except psycopg.Error as exc:
            self._unreachable(exc)
            return False
