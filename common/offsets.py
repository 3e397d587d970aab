"""A DEP's consumer offsets, kept in PostgreSQL (``da_offsets``) beside the state they describe.

``StoredOffsets`` knows, per assigned partition, the next offset as this instance last stored it.
``claim`` moves the offsets of a whole batch in one statement inside the batch's transaction, and
only where each is still where this instance left it: a zombie that lost a partition finds the
offset moved (``OffsetConflict``) and rolls its batch back.

``OffsetsInDatabase`` is the part of the store processor (``common.store``) that the group's
rebalances and the run loop's idle turns call: each partition starts from its stored offset
(from the beginning of the topic when none is stored), and Kafka is told the offsets too, at
most once a second, only for lag tools. It owns the processor's database connection, and notes
when each partition was last read to its end (``read_to``, what ``common.ticks`` hands a timer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from common.errors import TransientError
from common.runloop import Consumer, Stopper, StopRequested, is_transient

log = logging.getLogger(__name__)
# How often a DEP tells Kafka its offsets (for lag tools; the database holds the real ones).
KAFKA_COMMIT_EVERY_S = 1.0

Cursor = psycopg.Cursor[tuple[object, ...]]
Partition = tuple[str, int]

# One statement for every partition of a batch: update the rows still at their expected offset,
# insert the ones not stored yet; the caller compares the count with the partitions it claimed.
# The claims come sorted and are applied in that order (a nested loop over the unnest), so two
# instances claiming the same partitions lock them in the same order; a deadlock, should the
# planner choose otherwise, is a transient fault and the batch is retried.
_CLAIM = """
WITH claim AS (
    SELECT * FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(next)s::bigint[],
                         %(expected)s::bigint[]) AS c(topic, partition, next_offset, expected)
), moved AS (
    UPDATE da_offsets o SET next_offset = c.next_offset, updated_at = now()
    FROM claim c
    WHERE o.consumer_group = %(group)s AND o.topic = c.topic AND o.partition = c.partition
      AND o.next_offset = c.expected
    RETURNING 1
), added AS (
    INSERT INTO da_offsets (consumer_group, topic, partition, next_offset)
    SELECT %(group)s, topic, partition, next_offset FROM claim WHERE expected IS NULL
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM added)
"""


class OffsetConflict(TransientError):
    """The stored offset moved under us: another instance owns the partition now."""


class StoredOffsets:
    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        # Next offset per assigned partition as stored in the database; None: no row yet.
        self.stored: dict[Partition, int | None] = {}

    def load(
        self, conn: psycopg.Connection[tuple[object, ...]], partitions: list[TopicPartition]
    ) -> dict[Partition, int]:
        """What the database holds for the topics of ``partitions`` (not remembered)."""
        with conn.transaction():
            rows = conn.execute(
                "SELECT topic, partition, next_offset FROM da_offsets "
                "WHERE consumer_group = %s AND topic = ANY(%s)",
                (self.group_id, sorted({p.topic for p in partitions})),
            ).fetchall()
        return {(str(t), int(str(p))): int(str(o)) for t, p, o in rows}

    def claim(
        self, cur: Cursor, offsets: list[TopicPartition], first: dict[Partition, int]
    ) -> None:
        """Move each partition's stored offset to ``offsets``, only if it is still where we left
        it and the batch starts at or after it (so nothing already applied is applied again).
        Call ``committed`` once the transaction has committed."""
        claims = sorted((tp.topic, tp.partition, tp.offset) for tp in offsets)
        expected: list[int | None] = []
        for topic, partition, _ in claims:
            key = (topic, partition)
            if key not in self.stored:
                raise OffsetConflict(f"{topic}[{partition}] is no longer assigned")
            at = self.stored[key]
            if at is not None and first[key] < at:
                raise OffsetConflict(
                    f"{topic}[{partition}] batch starts at {first[key]}, "
                    f"before the stored offset {at}"
                )
            expected.append(at)
        if not claims:
            return
        cur.execute(
            _CLAIM,
            {
                "topics": [c[0] for c in claims],
                "partitions": [c[1] for c in claims],
                "next": [c[2] for c in claims],
                "expected": expected,
                "group": self.group_id,
            },
        )
        row = cur.fetchone()
        if row is None or int(str(row[0])) != len(claims):
            names = ", ".join(f"{t}[{p}]" for t, p, _ in claims)
            raise OffsetConflict(f"a stored offset of {names} moved; another instance committed it")

    def committed(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            self.stored[(tp.topic, tp.partition)] = tp.offset


class OffsetsInDatabase:
    """Rebalance and idle callbacks of a processor whose offsets live in the database, and the
    connection it keeps. ``prepare``: run on each new connection, committed (``common.store``)."""

    def __init__(
        self,
        group_id: str,
        connect: Callable[[], psycopg.Connection[tuple[object, ...]]],
        stop: Stopper,
        prepare: Callable[[Cursor], None] | None = None,
    ) -> None:
        self.group_id = group_id
        self.offsets = StoredOffsets(group_id)
        self.stop = stop
        self._connect = connect
        self._prepare = prepare
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        # Offsets committed to the database but not yet to Kafka (``_commit_to_kafka``).
        self._unsent: dict[Partition, int] = {}
        self._kafka_commit_due = 0.0
        # When each held partition was last applied to its end (``common.ticks``: ``read_to``).
        self.read_to: dict[Partition, datetime] = {}
        # The group's consumer, from the last rebalance: its cached partition ends, for timers
        # (a restarted DEP with nothing left to read fetches nothing, so no batch or idle turn
        # would note that it is at the end).
        self.consumer: Consumer | None = None

    def _db(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            if self._prepare is not None:
                try:
                    with conn.transaction():
                        self._prepare(conn.cursor())
                except Exception:
                    conn.close()
                    raise
            self._conn = conn
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
        self.consumer = consumer
        if not partitions:
            # A cooperative rebalance tells every member "nothing new" in each round: there is
            # no offset to read, and waiting on a database that is down would only hold up the
            # group's next round.
            consumer.incremental_assign([])
            return
        delay = 0.5
        while True:
            try:
                stored = self.offsets.load(self._db(), partitions)
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
            self.offsets.stored[(p.topic, p.partition)] = off
            start.append(
                TopicPartition(p.topic, p.partition, off if off is not None else OFFSET_BEGINNING)
            )
        consumer.incremental_assign(start)

    def revoked(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.offsets.stored.pop((p.topic, p.partition), None)
            self.read_to.pop((p.topic, p.partition), None)
            self._unsent.pop((p.topic, p.partition), None)  # the new owner commits its own

    def idle(self, consumer: Consumer, positions: list[TopicPartition]) -> None:
        """Store the positions past the last batch (over commit markers and aborted records
        only), with the same compare-and-set as a batch, then in Kafka for lag tools."""
        moved = [
            tp
            for tp in positions
            if (tp.topic, tp.partition) in self.offsets.stored
            and tp.offset > (self.offsets.stored[(tp.topic, tp.partition)] or 0)
        ]
        if not moved:
            self.note_read_to(consumer, [(tp.topic, tp.partition) for tp in positions])
            self._commit_to_kafka(consumer, [], now=True)  # what step 4 held back
            return
        conn = self._db()
        try:
            with conn.transaction():
                self.offsets.claim(
                    conn.cursor(), moved, {(t.topic, t.partition): t.offset for t in moved}
                )
        except OffsetConflict as exc:
            log.warning("%s; resuming from the stored offsets", exc)
            self._reload(consumer)
            return
        except Exception as exc:
            if is_transient(exc):
                self._drop_connection_if_broken()
            raise
        self.offsets.committed(moved)
        self.note_read_to(consumer, [(tp.topic, tp.partition) for tp in positions])
        self._commit_to_kafka(consumer, moved, now=True)

    def note_read_to(self, consumer: Consumer, keys: list[Partition]) -> None:
        """Partitions whose stored offset is at most one short of the end the consumer last
        heard of (that one: a transaction's commit marker) were read to their end just now. The
        cached end costs no broker round trip; a partition whose end is unknown is not marked."""
        now = datetime.now(UTC)
        for key in keys:
            stored = self.offsets.stored.get(key)
            if stored is None:
                continue
            try:
                ends = consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            except Exception:  # not fetched yet: unknown, so not read to the end
                continue
            if 0 <= ends[1] <= stored + 1:
                self.read_to[key] = now

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

    def _reload(self, consumer: Consumer) -> None:
        """After a conflict, move every partition we hold to what the database says. If the
        database cannot say, the batch is retried like after any transient fault (the stale
        expected offsets make it conflict again until the reload works)."""
        held = [TopicPartition(t, p) for (t, p) in self.offsets.stored]
        try:
            stored = self.offsets.load(self._db(), held)
        except Exception as exc:
            if is_transient(exc):
                self._drop_connection_if_broken()
                raise TransientError(f"cannot reload offsets after a conflict: {exc}") from exc
            raise
        for tp in held:
            off = stored.get((tp.topic, tp.partition))
            self.offsets.stored[(tp.topic, tp.partition)] = off
            if off is not None:
                consumer.seek(TopicPartition(tp.topic, tp.partition, off))

    def _drop_connection_if_broken(self) -> None:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._drop_connection()
