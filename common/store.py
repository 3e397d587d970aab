"""Kafka to PostgreSQL, exactly once: the processor every state-store DEP runs in.

The consumer offsets live in the database (``da_offsets``), beside the state they describe, and a
batch's state changes and its offsets commit in one database transaction. On assignment a
partition starts from its stored offset (from the beginning of the topic when none is stored:
the database, not the group, says what was applied), so a crash at any point either loses the
whole batch's effects (and it is read again) or keeps them and the offsets that pass it.
Commit sequence:

1. decode each message; one that can never decode (``InvalidEvent``, or an exception its content
   caused: ``common.faults.MESSAGE_FAULTS``) is a dead letter, and so is one condemned before
   (quarantined by ``common.guard``);
2. produce the dead letters and wait until the broker has them (they must be durable before the
   offsets that pass them are; a crash right after may write one twice, never lose one);
3. in one database transaction: compare-and-set the stored offsets of every partition in the
   batch (a zombie that lost a partition finds the offset moved and rolls back), run the DEP's
   handler (a poison event the decoder could not see, or one the database rejects for what it
   is: SQLSTATE class 22, 23 or 54, see ``common.faults``, is isolated by a savepoint per event
   and dead-lettered), commit;
4. commit the same offsets to Kafka, asynchronously and only so that lag tools see progress;
5. run the after-commit hook, if any (the outbox relay, ``common.outbox``): what it sends is
   already durable in the database, so a transient fault there is logged and retried after the
   next batch or tick (with or without new input), never a reason to retry this one.

On the run loop's ticks (``common.ticks``) a handler with timers runs them in a transaction of
their own, and the after-commit hook runs again, so what waits in the outbox leaves when idle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

import psycopg
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from common import faults
from common.deadletter import (
    DEFAULT_MAX_BYTES,
    DeadLetter,
    DeadLetterLimit,
    dead_letter,
    deliver,
    stripped,
)
from common.errors import InvalidEvent, TransientError
from common.runloop import (
    Consumer,
    Message,
    Producer,
    Stopper,
    StopRequested,
    first_offsets,
    is_transient,
    rewind,
)
from common.ticks import TICK_INTERVAL_S, Every, Owned, TickHandler, still_owned
from common.transactional import MessageId, message_id, next_offsets

log = logging.getLogger(__name__)
# How often a DEP tells Kafka its offsets (for lag tools; the database holds the real ones).
KAFKA_COMMIT_EVERY_S = 1.0

E = TypeVar("E")
Cursor = psycopg.Cursor[tuple[object, ...]]


class StoreHandler(Protocol[E]):
    """A DEP that keeps state in PostgreSQL. ``decode`` is per message; ``handle`` gets a batch
    and a cursor inside a transaction it does not own: it never commits and never touches Kafka.
    Either may raise ``InvalidEvent`` for an event that can never succeed; an exception the
    event's content causes (``common.faults``) is taken the same way."""

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
        after_commit: Callable[[psycopg.Connection[tuple[object, ...]]], object] | None = None,
        max_message_bytes: int = DEFAULT_MAX_BYTES,
        on_commit: Callable[[float], None] | None = None,
        tick_interval_s: float = TICK_INTERVAL_S,
        relay_after_batches: bool = True,
    ) -> None:
        self.stage = stage
        self.max_bytes = max_message_bytes
        # Messages to dead-letter without decoding them (quarantined by ``common.guard``).
        self.condemned: dict[MessageId, InvalidEvent] = {}
        self.after_commit = after_commit
        # False: only ticks write to the outbox, so only ticks run ``after_commit``.
        self.relay_after_batches = relay_after_batches
        self.on_commit = on_commit  # told how long each batch's database transaction took
        self.group_id = group_id
        self.handler = handler
        self._connect = connect
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.timeout_s = timeout_s
        self.limit = limit
        self.stop = stop
        # Next offset per assigned partition as stored in the database; None: no row yet.
        self._stored: dict[tuple[str, int], int | None] = {}
        # Offsets committed to the database but not yet to Kafka (``_commit_to_kafka``).
        self._unsent: dict[tuple[str, int], int] = {}
        self._kafka_commit_due = 0.0
        self.dead_lettered = 0
        self._timers = handler if isinstance(handler, TickHandler) else None
        self._every = Every(tick_interval_s)
        # When each held partition was last applied to its end (``common.ticks``: ``read_to``).
        self._read_to: dict[tuple[str, int], datetime] = {}

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
        rebalance then waits here, retrying, because starting anywhere else would be wrong. (If
        that outlasts max.poll.interval.ms the group moves on without us; the compare-and-set
        keeps whatever we do afterwards from applying anything twice.)"""
        if not partitions:
            # A cooperative rebalance tells every member "nothing new" in each round: there is
            # no offset to read, and waiting on a database that is down would only hold up the
            # group's next round.
            consumer.incremental_assign([])
            return
        delay = 0.5
        while True:
            try:
                stored = self._load_offsets(partitions)
                break
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self.stop.is_set():
                    raise StopRequested("stopped while the database was unreachable") from exc
                self._drop_connection()
                log.warning("cannot read stored offsets, retrying in %.1fs: %s", delay, exc)
                self.stop.wait(delay)
                delay = min(30.0, delay * 2)
        start = []
        for p in partitions:
            off = stored.get((p.topic, p.partition))
            self._stored[(p.topic, p.partition)] = off
            start.append(
                TopicPartition(p.topic, p.partition, off if off is not None else OFFSET_BEGINNING)
            )
        consumer.incremental_assign(start)

    def _load_offsets(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        conn = self._db()
        with conn.transaction():
            rows = conn.execute(
                "SELECT topic, partition, next_offset FROM da_offsets "
                "WHERE consumer_group = %s AND topic = ANY(%s)",
                (self.group_id, sorted({p.topic for p in partitions})),
            ).fetchall()
        return {(str(t), int(str(p))): int(str(o)) for t, p, o in rows}

    def revoked(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self._stored.pop((p.topic, p.partition), None)
            self._read_to.pop((p.topic, p.partition), None)
            self._unsent.pop((p.topic, p.partition), None)  # the new owner commits its own

    def idle(self, consumer: Consumer, positions: list[TopicPartition]) -> None:
        """Store the positions past the last batch (over commit markers and aborted records
        only), with the same compare-and-set as a batch, then in Kafka for lag tools."""
        moved = [
            tp
            for tp in positions
            if (tp.topic, tp.partition) in self._stored
            and tp.offset > (self._stored[(tp.topic, tp.partition)] or 0)
        ]
        if not moved:
            self._note_read_to(consumer, [(tp.topic, tp.partition) for tp in positions])
            self._commit_to_kafka(consumer, [], now=True)  # what step 4 held back
            return
        conn = self._db()
        try:
            with conn.transaction():
                self._claim(conn.cursor(), moved, {(t.topic, t.partition): t.offset for t in moved})
        except OffsetConflict as exc:
            log.warning("%s; resuming from the stored offsets", exc)
            self._reload(consumer)
            return
        except Exception as exc:
            if is_transient(exc):
                self._drop_connection_if_broken()
            raise
        for tp in moved:
            self._stored[(tp.topic, tp.partition)] = tp.offset
        self._note_read_to(consumer, [(tp.topic, tp.partition) for tp in positions])
        self._commit_to_kafka(consumer, moved, now=True)

    def _commit_to_kafka(
        self, consumer: Consumer, offsets: list[TopicPartition], *, now: bool = False
    ) -> None:
        """Step 4, at most once per ``KAFKA_COMMIT_EVERY_S`` (and whenever the loop is idle):
        these commits only inform lag tools, and one per batch of a DEP with small batches
        floods the group coordinator until its heartbeats time out and the group drops it."""
        for tp in offsets:
            self._unsent[(tp.topic, tp.partition)] = tp.offset
        at = time.monotonic()
        if not self._unsent or (not now and at < self._kafka_commit_due):
            return
        pending = [TopicPartition(t, p, o) for (t, p), o in sorted(self._unsent.items())]
        consumer.commit(offsets=pending, asynchronous=True)
        self._unsent.clear()
        self._kafka_commit_due = at + KAFKA_COMMIT_EVERY_S

    # -- one batch -------------------------------------------------------------------------
    def process(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        # Step 1
        events: list[E] = []
        kept: list[Message] = []
        letters: list[DeadLetter] = []
        for msg in batch:
            invalid = self.condemned.get(message_id(msg))
            if invalid is None:
                try:
                    events.append(self.handler.decode(msg))
                    kept.append(msg)
                    self.limit.record(False)
                    continue
                except Exception as exc:
                    invalid = faults.from_handler(exc)
                    if invalid is None:
                        raise
            self.limit.record(True)
            letters.append(dead_letter(self.stage, msg, invalid, max_bytes=self.max_bytes))
        started = time.monotonic()
        try:
            self._commit(events, kept, letters, batch)
        except OffsetConflict as exc:
            # Someone else committed (some of) these partitions. Go back to the batch's start
            # everywhere, then forward to what the database says where it has moved on.
            log.warning("%s; resuming from the stored offsets", exc)
            rewind(consumer, batch)
            self._reload(consumer)
            return
        except Exception as exc:
            if is_transient(exc):
                self._drop_connection_if_broken()
            raise
        for msg in batch:
            self.condemned.pop(message_id(msg), None)
        if self.on_commit is not None:
            self.on_commit(time.monotonic() - started)
        if self._timers is not None:
            self._note_read_to(consumer, list(first_offsets(batch)))
        # Step 4
        self._commit_to_kafka(consumer, next_offsets(batch))
        # Step 5
        if self.after_commit is not None and self.relay_after_batches:
            try:
                self.after_commit(self._db())
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._drop_connection_if_broken()
                log.warning("after the commit: %s; trying again on the next tick", exc)

    def _commit(
        self,
        events: list[E],
        kept: list[Message],
        letters: list[DeadLetter],
        batch: Sequence[Message],
    ) -> None:
        offsets = next_offsets(batch)
        conn = self._db()
        with conn.transaction():
            cur = conn.cursor()
            self._claim(cur, offsets, first_offsets(batch))
            try:
                with conn.transaction():  # savepoint: a poison event rolls back only itself
                    _as_invalid(self.handler.handle, events, cur)
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
                    _as_invalid(self.handler.handle, [event], cur)
            except InvalidEvent as exc:
                self.limit.record(True)
                letters.append(dead_letter(self.stage, msg, exc, max_bytes=self.max_bytes))
        return letters

    def _claim(
        self, cur: Cursor, offsets: list[TopicPartition], first: dict[tuple[str, int], int]
    ) -> None:
        """Step 3: move each partition's stored offset, only if it is still where we left it and
        the batch starts at or after it (so nothing already applied is applied again)."""
        for tp in sorted(offsets, key=lambda t: (t.topic, t.partition)):
            key = (tp.topic, tp.partition)
            if key not in self._stored:
                raise OffsetConflict(f"{tp.topic}[{tp.partition}] is no longer assigned")
            expected = self._stored[key]
            if expected is not None and first[key] < expected:
                raise OffsetConflict(
                    f"{tp.topic}[{tp.partition}] batch starts at {first[key]}, "
                    f"before the stored offset {expected}"
                )
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
        """Every dead letter acknowledged, or the batch is retried; one the broker refuses for
        its size goes again as headers only."""
        if not letters:
            return
        refused = self._deliver(letters)
        if refused and self._deliver([stripped(letters[i]) for i in refused]):
            raise TransientError("the broker refuses even a dead letter without its value")

    def _deliver(self, letters: list[DeadLetter]) -> list[int]:
        topic = self.dead_letter_topic
        records = [
            (topic, dl.key, dl.value, list[tuple[str, str | bytes | None]](dl.headers))
            for dl in letters
        ]
        return deliver(self.producer, records, self.timeout_s)

    def _reload(self, consumer: Consumer) -> None:
        """After a conflict, move every partition we hold to what the database says. If the
        database cannot say, the batch is retried like after any transient fault (the stale
        expected offsets make it conflict again until the reload works)."""
        held = [TopicPartition(t, p) for (t, p) in self._stored]
        try:
            stored = self._load_offsets(held)
        except Exception as exc:
            if is_transient(exc):
                self._drop_connection_if_broken()
                raise TransientError(f"cannot reload offsets after a conflict: {exc}") from exc
            raise
        for tp in held:
            off = stored.get((tp.topic, tp.partition))
            self._stored[(tp.topic, tp.partition)] = off
            if off is not None:
                consumer.seek(TopicPartition(tp.topic, tp.partition, off))

    # -- wall-clock timers -----------------------------------------------------------------
    def _note_read_to(self, consumer: Consumer, keys: list[tuple[str, int]]) -> None:
        """Partitions whose stored offset is at most one short of the end the consumer last
        heard of (that one: a transaction's commit marker) were read to their end just now. The
        cached end costs no broker round trip; a partition whose end is unknown is not marked."""
        now = datetime.now(UTC)
        for key in keys:
            stored = self._stored.get(key)
            if stored is None:
                continue
            try:
                ends = consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            except Exception:  # not fetched yet: unknown, so not read to the end
                continue
            if 0 <= ends[1] <= stored + 1:
                self._read_to[key] = now

    def tick(self, now: datetime, owned: Owned) -> None:
        if (self._timers is None and self.after_commit is None) or not self._every.due():
            return
        try:
            if self._timers is not None and owned:
                conn = self._db()
                with conn.transaction():
                    cur = conn.cursor()
                    mine = still_owned(cur, self.group_id, self._stored, owned)
                    if mine:
                        read_to = {k: t for k, t in self._read_to.items() if k in mine}
                        self._timers.tick(now, mine, read_to, cur)
            if self.after_commit is not None:
                self.after_commit(self._db())
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._drop_connection_if_broken()
            log.warning("timers: %s; trying again on a later tick", exc)

    def _drop_connection_if_broken(self) -> None:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._drop_connection()

    def close(self) -> None:
        self._drop_connection()
        self.producer.flush(self.timeout_s)


def _as_invalid(
    handle: Callable[[Sequence[E], Cursor], None], events: Sequence[E], cur: Cursor
) -> None:
    """Run a handler; the database rejecting a value for what it is (a NUL in text, a number out
    of range, an index row too large) will reject it every time, so it is an invalid event, not a
    fault to retry; so is an exception the event's content raised in the handler's own code."""
    try:
        handle(events, cur)
    except Exception as exc:
        invalid = faults.from_handler(exc)
        if invalid is None:
            raise
        raise invalid from None
