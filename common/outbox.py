"""Transactional outbox: how a DEP that emits DEs stays exactly-once across PostgreSQL and Kafka.

The DEP's handler writes the DEs it emits into ``da_outbox`` with ``Outbox.add``, inside the same
transaction as its state change and the consumed offsets, so the three commit together or not
at all. After each commit the store processor runs ``OutboxRelay.relay``:

1. lock the owner's oldest rows (``FOR UPDATE SKIP LOCKED``: two instances never send one row
   at the same time);
2. produce them and wait until the broker has them all;
3. delete them and commit.

A crash between 2 and 3 sends those rows again on the next relay: downstream DEPs dedupe by DE
identity (root event id + name), so a second delivery changes nothing. A relay that cannot reach
the broker leaves the rows and tries again after the next batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from common.errors import TransientError
from common.runloop import Headers, Producer

log = logging.getLogger(__name__)
Cursor = psycopg.Cursor[tuple[object, ...]]

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS da_outbox (
    id bigserial PRIMARY KEY,
    owner text NOT NULL,
    topic text NOT NULL,
    key bytea,
    value bytea NOT NULL,
    header_names text[] NOT NULL DEFAULT '{}',
    header_values bytea[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS da_outbox_by_owner ON da_outbox (owner, id);
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Outbox:
    """Where one DEP's handler puts what it emits; nothing here talks to Kafka."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def add(self, cur: Cursor, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        with cur.copy(
            "COPY da_outbox (owner, topic, key, value, header_names, header_values) FROM STDIN"
        ) as copy:
            for m in messages:
                copy.write_row(
                    (
                        self.owner,
                        m.topic,
                        m.key,
                        m.value,
                        [h for h, _ in m.headers],
                        [v for _, v in m.headers],
                    )
                )


class OutboxRelay:
    def __init__(
        self, owner: str, producer: Producer, *, timeout_s: float, batch_size: int = 1000
    ) -> None:
        self.owner = owner
        self.producer = producer
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.sent = 0

    def relay(self, conn: psycopg.Connection[tuple[object, ...]]) -> int:
        """Send every row the owner has in the outbox; returns how many were sent."""
        sent = 0
        while True:
            with conn.transaction():
                # Step 1
                rows = conn.execute(
                    "SELECT id, topic, key, value, header_names, header_values FROM da_outbox "
                    "WHERE owner = %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (self.owner, self.batch_size),
                ).fetchall()
                if not rows:
                    break
                # Step 2
                for _id, topic, key, value, names, values in rows:
                    headers: Headers = list(zip(names, values, strict=True))  # type: ignore[call-overload]
                    self.producer.produce(str(topic), value, key, headers=headers)  # type: ignore[arg-type]
                remaining = self.producer.flush(self.timeout_s)
                if remaining:
                    raise TransientError(f"{remaining} outbox messages not acknowledged")
                # Step 3
                conn.execute("DELETE FROM da_outbox WHERE id = ANY(%s)", ([r[0] for r in rows],))
            sent += len(rows)
            if len(rows) < self.batch_size:
                break
        self.sent += sent
        return sent
