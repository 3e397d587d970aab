"""Kafka to PostgreSQL, exactly once: the processor every state-store DEP runs in.

The consumer offsets live in the database (``da_offsets``), beside the state they describe, and a
batch's state changes and its offsets commit in one database transaction. On assignment a
partition starts from its stored offset, so a crash at any point either loses the whole batch's
effects (and it is read again) or keeps them and the offsets that pass it. Commit sequence:

1. decode each message; one that can never decode is a dead letter;
2. produce the dead letters and wait until the broker has them (they must be durable before the
   offsets that pass them are; a crash right after may write one twice, never lose one);
3. in one database transaction: compare-and-set the stored offsets of every partition in the
   batch (a zombie that lost a partition finds the offset moved and rolls back), run the DEP's
   handler, commit;
4. commit the same offsets to Kafka, asynchronously and only so that lag tools see progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import psycopg
from confluent_kafka import OFFSET_INVALID, Producer, TopicPartition

from common.deadletter import DeadLetter, DeadLetterLimit, dead_letter
from common.errors import InvalidEvent, TransientError
from common.runloop import Consumer, Message, Stopper, is_transient
from common.transactional import next_offsets

log = logging.getLogger(__name__)

E = TypeVar("E")
Cursor = psycopg.Cursor[tuple[object, ...]]


class StoreHandler(Protocol[E]):
    """A DEP that keeps state in PostgreSQL. ``decode`` is per message; ``handle`` gets a batch
    and a cursor inside a transaction it does not own: it never commits and never touches Kafka.
    Either may raise ``InvalidEvent`` for an event that can never succeed."""

    def decode(self, msg: Message) -> E: ...
    def handle(self, events: Sequence[E], cur: Cursor) -> None: ...


class OffsetConflict(TransientError):
    """The stored offset moved under us: another instance owns the partition now."""


class StoreProcessor(Generic[E]):
    def __init__(
        self,
        stage: str,
        group_id: str,
        handler: StoreHandler[E],
        connect: Callable[[], psycopg.Connection[tuple[object, ...]]],
        producer: Producer,
        dead_letter_topic: str,
        *,
        timeout_s: float,
        limit: DeadLetterLimit,
        stop: Stopper,
    ) -> None:
        self.stage = stage
        self.group_id = group_id
        self.handler = handler
        self._connect = connect
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.timeout_s = timeout_s
        self.limit = limit
        self.stop = stop
        # Next offset per partition as stored in the database; None: no row yet.
        self._stored: dict[tuple[str, int], int | None] = {}
        self.dead_lettered = 0

    def _db(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    # -- rebalance -------------------------------------------------------------------------
    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition from its stored offset. The database may be down right now; the
        rebalance then waits here, retrying, because starting anywhere else would be wrong."""
        delay = 0.5
        while True:
            try:
                stored = self._load_offsets(partitions)
                break
            except Exception as exc:
                if not is_transient(exc) or self.stop.is_set():
                    raise
                self._drop_connection()
                log.warning("cannot read stored offsets, retrying in %.1fs: %s", delay, exc)
                self.stop.wait(delay)
                delay = min(30.0, delay * 2)
        start = []
        for p in partitions:
            off = stored.get((p.topic, p.partition))
            self._stored[(p.topic, p.partition)] = off
            start.append(
                TopicPartition(p.topic, p.partition, off if off is not None else OFFSET_INVALID)
            )
        # OFFSET_INVALID: no stored offset yet, so use the group's (or auto.offset.reset).
        consumer.incremental_assign(start)

    def _load_offsets(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        conn = self._db()
        with conn.transaction():
            rows = conn.execute(
                "SELECT topic, partition, next_offset FROM da_offsets "
                "WHERE consumer_group = %s AND topic = ANY(%s)",
                (self.group_id, sorted({p.topic for p in partitions})),
            ).fetchall()
        return {(str(t), int(p)): int(o) for t, p, o in rows}  # type: ignore[call-overload]

    def revoked(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self._stored.pop((p.topic, p.partition), None)

    # -- one batch -------------------------------------------------------------------------
    def process(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        # Step 1
        events: list[E] = []
        kept: list[Message] = []
        letters: list[DeadLetter] = []
        for msg in batch:
            try:
                events.append(self.handler.decode(msg))
                kept.append(msg)
                self.limit.record(False)
            except InvalidEvent as exc:
                self.limit.record(True)
                letters.append(dead_letter(self.stage, msg, exc))
        # Step 2 happens inside _commit, after the handler had its say.
        offsets = next_offsets(batch)
        try:
            self._commit(events, kept, letters, offsets)
        except OffsetConflict as exc:
            # Someone else committed these partitions: nothing of ours is owed. Resume from what
            # the database says instead of retrying a batch that is not ours any more.
            log.warning("%s; resuming from the stored offsets", exc)
            self._reload(consumer)
            return
        except Exception as exc:
            if is_transient(exc):
                self._drop_connection_if_broken()
            raise
        # Step 4
        consumer.commit(offsets=offsets, asynchronous=True)

    def _commit(
        self,
        events: list[E],
        kept: list[Message],
        letters: list[DeadLetter],
        offsets: list[TopicPartition],
    ) -> None:
        conn = self._db()
        with conn.transaction():
            cur = conn.cursor()
            self._claim(cur, offsets)
            try:
                with conn.transaction():  # savepoint: a poison event rolls back only itself
                    self.handler.handle(events, cur)
            except InvalidEvent:
                letters += self._one_by_one(conn, cur, events, kept)
            self._publish(letters)  # Step 2
        for tp in offsets:
            self._stored[(tp.topic, tp.partition)] = tp.offset
        self.dead_lettered += len(letters)

    def _one_by_one(
        self,
        conn: psycopg.Connection[tuple[object, ...]],
        cur: Cursor,
        events: list[E],
        kept: list[Message],
    ) -> list[DeadLetter]:
        """The batch held a poison event the decoder could not see: find it by handling each
        event in its own savepoint."""
        letters = []
        for event, msg in zip(events, kept, strict=True):
            try:
                with conn.transaction():
                    self.handler.handle([event], cur)
            except InvalidEvent as exc:
                letters.append(dead_letter(self.stage, msg, exc))
        return letters

    def _claim(self, cur: Cursor, offsets: list[TopicPartition]) -> None:
        """Step 3: move each partition's stored offset, only if it is still where we left it."""
        for tp in sorted(offsets, key=lambda t: (t.topic, t.partition)):
            key = (tp.topic, tp.partition)
            if key not in self._stored:
                raise OffsetConflict(f"{tp.topic}[{tp.partition}] is no longer assigned")
            expected = self._stored[key]
            if expected is None:
                cur.execute(
                    "INSERT INTO da_offsets (consumer_group, topic, partition, next_offset) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (self.group_id, tp.topic, tp.partition, tp.offset),
                )
            else:
                cur.execute(
                    "UPDATE da_offsets SET next_offset = %s, updated_at = now() "
                    "WHERE consumer_group = %s AND topic = %s AND partition = %s "
                    "AND next_offset = %s",
                    (tp.offset, self.group_id, tp.topic, tp.partition, expected),
                )
            if cur.rowcount != 1:
                raise OffsetConflict(
                    f"stored offset of {tp.topic}[{tp.partition}] moved; "
                    "another instance committed it"
                )

    def _publish(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        for dl in letters:
            hdrs: list[tuple[str, str | bytes | None]] = list(dl.headers)
            self.producer.produce(self.dead_letter_topic, dl.value, dl.key, headers=hdrs)
        remaining = self.producer.flush(self.timeout_s)
        if remaining:
            raise TransientError(f"{remaining} dead letters not acknowledged by the broker")

    def _reload(self, consumer: Consumer) -> None:
        """After a conflict, go back to what the database says for the partitions we hold."""
        held = [TopicPartition(t, p) for (t, p) in self._stored]
        try:
            stored = self._load_offsets(held)
        except Exception as exc:
            log.warning("could not reload offsets after a conflict: %s", exc)
            return
        for tp in held:
            off = stored.get((tp.topic, tp.partition))
            self._stored[(tp.topic, tp.partition)] = off
            if off is not None:
                consumer.seek(TopicPartition(tp.topic, tp.partition, off))

    def _drop_connection_if_broken(self) -> None:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._drop_connection()

    def close(self) -> None:
        self._drop_connection()
        self.producer.flush(self.timeout_s)
