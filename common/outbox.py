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
the broker leaves the rows; the store processor tries again on the run loop's next turns,
backing off, whether or not more input arrives.

Where a second delivery would be seen (answers to commands, broadcasts a subscriber counts), the
relay is given a ``RelayMarker`` and a transactional producer, and sends each batch exactly once:
one relay per owner at a time (an advisory lock), and step 2 is a Kafka transaction that also
records the batch's row ids (as the metadata of a consumer-group offset, which commits with the
messages). A relay first deletes the rows the last committed transaction lists: those were sent
by a relay that died before its step 3.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from confluent_kafka import KafkaException, TopicPartition

from common.deadletter import DEFAULT_MAX_BYTES, H_REASON, DeadLetterLimit, deliver, record_size
from common.errors import InvalidEvent, TransientError
from common.runloop import Headers, Producer
from common.wedge import Watchdog, exit_wedged, until_done

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

    def __init__(self, owner: str, max_message_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.owner = owner
        self.max_bytes = max_message_bytes

    def add(self, cur: Cursor, messages: Sequence[OutboxMessage]) -> None:
        """Raises ``InvalidEvent`` for a message larger than the broker takes: the relay could
        never send it, so the event that emits it is the dead letter, not a relay stuck."""
        if not messages:
            return
        for m in messages:
            size = record_size(m.key, m.value, m.headers)
            if size > self.max_bytes:
                raise InvalidEvent(
                    "too_large",
                    f"an output to {m.topic} would be about {size} bytes, more than the "
                    f"{self.max_bytes} a record may have (DA_MAX_MESSAGE_BYTES)",
                )
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


class MarkerConsumer(Protocol):
    """The part of a consumer (of the marker's own group, never subscribed) the marker uses."""

    def committed(self, partitions: list[TopicPartition], timeout: float = ...) -> Any: ...
    def consumer_group_metadata(self) -> Any: ...


_MAX_METADATA = 3000  # below the broker's offset.metadata.max.bytes (4096 by default)


class RelayMarker:
    """Which outbox rows the last committed relay transaction sent: the metadata of the marker
    group's offset on ``topic``[0], committed inside that transaction."""

    def __init__(self, consumer: MarkerConsumer, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic

    def last_sent(self, timeout_s: float) -> list[int]:
        (tp,) = self.consumer.committed([TopicPartition(self.topic, 0)], timeout=timeout_s)
        return decode_ids(tp.metadata or "")

    def record(self, producer: Producer, ids: list[int], timeout_s: float) -> None:
        position = TopicPartition(self.topic, 0, max(ids) + 1, encode_ids(ids))
        group = self.consumer.consumer_group_metadata()
        producer.send_offsets_to_transaction([position], group, timeout_s)


def encode_ids(ids: list[int]) -> str:
    """Ids as sorted ranges: ``3-9,12``."""
    spans: list[list[int]] = []
    for i in sorted(ids):
        if spans and spans[-1][1] + 1 == i:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def decode_ids(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        out += range(int(low), int(high or low) + 1)
    return out


class OutboxRelay:
    def __init__(
        self,
        owner: str,
        producer: Producer,
        *,
        timeout_s: float,
        batch_size: int = 1000,
        marker: RelayMarker | None = None,
        limit: DeadLetterLimit | None = None,
    ) -> None:
        """With ``marker``, ``producer`` must be transactional: each batch is sent exactly once.
        ``limit``: the stage's dead-letter limit, which the dead letters it relays (parked
        events that waited too long) count against."""
        self.owner = owner
        self.limit = limit
        self.producer = producer
        self.timeout_s = timeout_s
        # The same bound as a Kafka-to-Kafka stage's transaction calls: after a broker restart
        # send_offsets_to_transaction could wait for good, and the DEP applied nothing more.
        self._wedged: Callable[[str], None] = exit_wedged
        self._watchdog = Watchdog(timeout_s * 2 + 5, lambda why: self._wedged(why))
        self.batch_size = batch_size
        self.marker = marker
        self._transactions_ready = False
        self.sent = 0

    def relay(self, conn: psycopg.Connection[tuple[object, ...]]) -> int:
        """Send every row the owner has in the outbox; returns how many were sent."""
        if self.marker is not None:
            # Nothing waiting, nothing a dead relay left to delete: no broker round trip (the
            # marker's) after every batch of a DEP whose batches seldom emit.
            with conn.transaction():
                waiting = conn.execute(
                    "SELECT 1 FROM da_outbox WHERE owner = %s LIMIT 1", (self.owner,)
                ).fetchone()
            return 0 if waiting is None else self._relay_exactly_once(conn, self.marker)
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
                records = []
                for _id, topic, key, value, names, values in rows:
                    headers: Headers = list(zip(names, values, strict=True))  # type: ignore[call-overload]
                    if self.limit is not None and H_REASON in names:  # type: ignore[operator]
                        self.limit.record(True)
                    records.append((str(topic), key, value, headers))
                if deliver(self.producer, records, self.timeout_s):  # type: ignore[arg-type]
                    # Outbox.add keeps what is too large out; a broker below the setting
                    # refuses even so: the rows stay, and the operator sees this line.
                    raise TransientError("the broker refused outbox messages (too large?)")
                # Step 3
                conn.execute("DELETE FROM da_outbox WHERE id = ANY(%s)", ([r[0] for r in rows],))
            sent += len(rows)
            if len(rows) < self.batch_size:
                break
        self.sent += sent
        return sent

    def _relay_exactly_once(
        self, conn: psycopg.Connection[tuple[object, ...]], marker: RelayMarker
    ) -> int:
        # Before the marker is read: a transaction a dead relay left open holds the marker's
        # offset unstable, and reading it would wait until that transaction timed out.
        self._init_transactions()
        sent = 0
        while True:
            with conn.transaction():
                # Step 1: this owner's relay, alone; rows a dead relay sent are not sent again.
                locked = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"da_outbox:{self.owner}",)
                ).fetchone()
                if not locked or not locked[0]:
                    break  # another instance is relaying; what is left waits for the next batch
                conn.execute(
                    "DELETE FROM da_outbox WHERE owner = %s AND id = ANY(%s)",
                    (self.owner, marker.last_sent(self.timeout_s)),
                )
                rows = conn.execute(
                    "SELECT id, topic, key, value, header_names, header_values FROM da_outbox "
                    "WHERE owner = %s ORDER BY id LIMIT %s",
                    (self.owner, self.batch_size),
                ).fetchall()
                while len(encode_ids([int(str(r[0])) for r in rows])) > _MAX_METADATA:
                    rows = rows[: len(rows) // 2]
                if not rows:
                    break
                # Step 2, in one Kafka transaction with the ids it sends
                ids = [int(str(r[0])) for r in rows]
                self._send_transaction(rows, ids, marker)
                # Step 3
                conn.execute("DELETE FROM da_outbox WHERE id = ANY(%s)", (ids,))
            sent += len(rows)
        self.sent += sent
        return sent

    def _init_transactions(self) -> None:
        if not self._transactions_ready:
            # Fences an earlier incarnation of this instance and aborts what it left open.
            self._watchdog.run(lambda: self.producer.init_transactions(self.timeout_s))
            self._transactions_ready = True

    def _send_transaction(self, rows: list[Any], ids: list[int], marker: RelayMarker) -> None:
        self._init_transactions()
        self.producer.begin_transaction()
        try:
            for _id, topic, key, value, names, values in rows:
                headers: Headers = list(zip(names, values, strict=True))
                if self.limit is not None and H_REASON in names:
                    self.limit.record(True)
                self.producer.produce(str(topic), value, key, headers=headers)
            self._until_done(lambda: marker.record(self.producer, ids, self.timeout_s))
            self._until_done(lambda: self.producer.commit_transaction(self.timeout_s))
        except Exception as exc:
            self._abort(exc)
            raise

    def _until_done(self, call: Callable[[], None]) -> None:
        """A retriable error repeats the same call (librdkafka's contract: after a commit timed
        out, an abort only fails with a conflict, and the relay stood still, its rows unsent,
        until the process was restarted); past the watchdog's limit the client is taken for
        wedged: the process ends and its restart's init_transactions aborts what is open."""
        until_done(self._watchdog, call, give_up=lambda: False, wait=time.sleep)

    def _abort(self, exc: Exception) -> None:
        """Abort the relay's transaction after ``exc``; one that cannot be aborted (a fatal
        error, a conflict) ends the process, whose restart fences and aborts it."""
        try:
            self._until_done(lambda: self.producer.abort_transaction(self.timeout_s))
        except KafkaException as failed:
            self._wedged(f"the relay's transaction could not be aborted after {exc}: {failed}")
            raise
