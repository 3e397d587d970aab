"""Kafka to PostgreSQL, exactly once: the processor every state-store DEP runs in.

The consumer offsets live in the database (``da_offsets``, ``common.offsets``), beside the state
they describe, and a batch's state changes and its offsets commit in one database transaction. On
assignment a partition starts from its stored offset (from the beginning of the topic when none
is stored: the database, not the group, says what was applied), so a crash at any point either
loses the whole batch's effects (and it is read again) or keeps them and the offsets that pass it.
Commit sequence:

1. decode each message; one that can never decode (``InvalidEvent``, or an exception its content
   caused: ``common.faults.MESSAGE_FAULTS``) is a dead letter, and so is one condemned before
   (quarantined by ``common.guard``);
2. produce the dead letters and wait until the broker has them (they must be durable before the
   offsets that pass them are; a process that dies right after may write one twice, never lose
   one; a batch retried by the same process, after PostgreSQL went away say, skips the letters
   the broker already has);
3. in one database transaction: compare-and-set the stored offsets of every partition in the
   batch in one statement (``common.offsets``: a zombie that lost a partition finds the offset
   moved and rolls back), run the DEP's handler (a poison event the decoder could not see, or
   one the database rejects for what it is: SQLSTATE class 22, 23 or 54, see
   ``common.faults``, is isolated by a savepoint per event and dead-lettered), commit;
4. commit the same offsets to Kafka, asynchronously and only so that lag tools see progress;
5. run the after-commit hook, if any (the outbox relay, ``common.outbox``): what it sends is
   already durable in the database, so a transient fault there is logged and retried after the
   next batch or tick (with or without new input), never a reason to retry this one.

On the run loop's ticks (``common.ticks``) a handler with timers runs them in a transaction of
their own, and the after-commit hook runs again, so what waits in the outbox leaves when idle.
A handler with a ``prepare`` method (``Prepares``) gets it called once per database connection,
in a transaction of its own, before the connection's first batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, Protocol, TypeVar, runtime_checkable

import psycopg

from common import faults
from common.deadletter import (
    DEFAULT_MAX_BYTES,
    DeadLetter,
    DeadLetterLimit,
    dead_letter,
    deliver,
    source_of,
    stripped,
)
from common.errors import InvalidEvent, TransientError
from common.offsets import OffsetConflict, OffsetsInDatabase
from common.runloop import (
    Consumer,
    Message,
    Producer,
    Stopper,
    first_offsets,
    is_transient,
    rewind,
)
from common.ticks import TICK_INTERVAL_S, Every, Owned, TickHandler, still_owned
from common.transactional import MessageId, message_id, next_offsets

log = logging.getLogger(__name__)

E = TypeVar("E")
Cursor = psycopg.Cursor[tuple[object, ...]]


class StoreHandler(Protocol[E]):
    """A DEP that keeps state in PostgreSQL. ``decode`` is per message; ``handle`` gets a batch
    and a cursor inside a transaction it does not own: it never commits and never touches Kafka.
    Either may raise ``InvalidEvent`` for an event that can never succeed; an exception the
    event's content causes (``common.faults``) is taken the same way."""

    def decode(self, msg: Message) -> E: ...
    def handle(self, events: Sequence[E], cur: Cursor) -> None: ...


@runtime_checkable
class Prepares(Protocol):
    """A handler with per-connection setup (a temporary table, say): run once on each new
    connection, committed before its first batch, so no batch pays for it and no savepoint
    rolled back around a poison event can undo it."""

    def prepare(self, cur: Cursor) -> None: ...


class StoreProcessor(OffsetsInDatabase, Generic[E]):
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
        prepare = handler.prepare if isinstance(handler, Prepares) else None
        super().__init__(group_id, connect, stop, prepare)
        self.handler = handler
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.timeout_s = timeout_s
        self.limit = limit
        self.dead_lettered = 0
        # Dead letters the broker has, of messages whose batch has not committed yet: a batch
        # retried after a transient fault (PostgreSQL restarting, say) does not write them again.
        self._sent: set[MessageId] = set()
        self._timers = handler if isinstance(handler, TickHandler) else None
        self._every = Every(tick_interval_s)

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
            self.note_read_to(consumer, list(first_offsets(batch)))
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
            self.offsets.claim(cur, offsets, first_offsets(batch))
            try:
                with conn.transaction():  # savepoint: a poison event rolls back only itself
                    _as_invalid(self.handler.handle, events, cur)
            except InvalidEvent:
                letters += self._one_by_one(conn, cur, events, kept)
            self._publish(letters)  # Step 2
        self._sent.difference_update(message_id(m) for m in batch)
        self.offsets.committed(offsets)
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

    def _publish(self, letters: list[DeadLetter]) -> None:
        """Every dead letter acknowledged, or the batch is retried; one the broker refuses for
        its size goes again as headers only."""
        letters = [dl for dl in letters if source_of(dl) not in self._sent]
        if not letters:
            return
        refused = self._deliver(letters)
        if refused and self._deliver([stripped(letters[i]) for i in refused]):
            raise TransientError("the broker refuses even a dead letter without its value")
        self._sent.update(s for dl in letters if (s := source_of(dl)) is not None)

    def _deliver(self, letters: list[DeadLetter]) -> list[int]:
        topic = self.dead_letter_topic
        records = [
            (topic, dl.key, dl.value, list[tuple[str, str | bytes | None]](dl.headers))
            for dl in letters
        ]
        return deliver(self.producer, records, self.timeout_s)

    # -- wall-clock timers -----------------------------------------------------------------
    def tick(self, now: datetime, owned: Owned) -> None:
        if (self._timers is None and self.after_commit is None) or not self._every.due():
            return
        try:
            if self._timers is not None and owned:
                conn = self._db()
                with conn.transaction():
                    cur = conn.cursor()
                    mine = still_owned(cur, self.group_id, self.offsets.stored, owned)
                    if mine:
                        if self.consumer is not None:
                            self.note_read_to(self.consumer, sorted(mine))
                        read_to = {k: t for k, t in self.read_to.items() if k in mine}
                        self._timers.tick(now, mine, read_to, cur)
            if self.after_commit is not None:
                self.after_commit(self._db())
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._drop_connection_if_broken()
            log.warning("timers: %s; trying again on a later tick", exc)

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
