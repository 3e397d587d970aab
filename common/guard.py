"""The crash-loop guard: a message that kills its process again and again is quarantined.

A message can end its process before any handler can say no: the kernel's OOM killer, a segfault
in a C extension, an uncaught bug. The orchestrator restarts the stage, which reads the same
message again and dies again, and nothing behind it flows. The guard remembers, in PostgreSQL
(``da_inflight``, one row per group and partition), what was in flight:

1. before a batch is handed to the processor, its first and last offset per partition are
   written with an attempt count, in one statement (autocommit: committed before any handler
   runs, and visible to the next start whatever kills this process; the commit does not wait
   for the disk, see ``_db``);
2. a batch that fails transiently (or trips the dead-letter limit) gives its attempt back;
   one that commits needs no write (its record is then behind where the partition resumes),
   but a clean stop or a revocation clears the count, so that a rewind (``da replay``) to a
   batch that once committed is not taken for a crash;
3. when a partition resumes at the first offset of its record and the record counts attempts,
   the process died with that range in flight. After one such death the range is retried as a
   batch: most deaths are not the message's doing (a SIGKILL on a rollout, a stage exiting
   because its Kafka client wedged while the broker restarted), and one message at a time costs
   a poll each, minutes for a big batch. After ``NARROW_AFTER`` deaths in a row the range is
   suspect and handled one message at a time (the rest of the batch is rewound), each message
   counting its own attempts;
4. a message whose previous ``max_crashes`` attempts all died is not handed to its handler: the
   processor dead-letters it as ``quarantined`` with what is known, and the stage goes on.

The guard never stops a stage: when PostgreSQL cannot be reached it logs, and the batch goes on
unguarded. ``DA_TEST_CRASH_MARKER`` (tests only) makes the process exit hard on a message that
contains it, as a segfault would.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from confluent_kafka import TopicPartition

from common import faults
from common.deadletter import DeadLetterLimitExceeded
from common.errors import InvalidEvent
from common.inflight import Connect, InFlight, InFlightTable
from common.runloop import Consumer, Message, Processor, rewind
from common.transactional import MessageId, message_id

log = logging.getLogger(__name__)
REASON = "quarantined"
CRASH_EXIT = 70  # the status of the test hook's hard exit
NARROW_AFTER = 2  # deaths in a row with one range in flight before it is taken one at a time


class Condemning(Processor, Protocol):
    """A processor that dead-letters the messages in ``condemned`` instead of handling them."""

    condemned: dict[MessageId, InvalidEvent]


class Guarded:
    """Wraps a stage's processor with the guard; the run loop sees a plain ``Processor``."""

    def __init__(
        self,
        inner: Condemning,
        group: str,
        connect: Connect,
        *,
        max_crashes: int,
        crash_marker: str = "",
    ) -> None:
        self.inner = inner
        self.group = group
        self._table = InFlightTable(group, connect)
        self.max_crashes = max_crashes
        self._marker = crash_marker.encode()
        # Per partition: its record as last read or written; absent: not read since assigned.
        self._known: dict[tuple[str, int], InFlight | None] = {}
        self._suspect: dict[tuple[str, int], InFlight] = {}
        self._retry: dict[tuple[str, int], InFlight] = {}  # died once: retried as a batch
        self._clean: set[tuple[str, int]] = set()  # last batch committed
        self.quarantined = 0

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.inner.assigned(consumer, partitions)

    def revoked(self, partitions: list[TopicPartition]) -> None:
        gone = {(p.topic, p.partition) for p in partitions}
        self._settle(gone)
        for tp in gone:
            self._known.pop(tp, None)
            self._suspect.pop(tp, None)
            self._retry.pop(tp, None)
        self.inner.revoked(partitions)

    def idle(self, consumer: Consumer, positions: list[TopicPartition]) -> None:
        self.inner.idle(consumer, positions)

    def tick(self, now: datetime, owned: frozenset[tuple[str, int]]) -> None:
        self.inner.tick(now, owned)

    def close(self) -> None:
        self.inner.close()
        self._settle(set(self._clean))
        self._table.close()

    def _settle(self, partitions: set[tuple[str, int]]) -> None:
        """A partition left cleanly (stop, rebalance) after a committed batch: its row counts no
        attempt, so a later rewind to that batch (``da replay``) is not taken for a crash."""
        done = {tp: r for tp in partitions & self._clean if (r := self._known.get(tp)) is not None}
        for rec in done.values():
            rec.attempts = 0
        if done:
            self._table.write(done)
        self._clean -= partitions

    def process(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        batch = self._narrow(consumer, batch)
        began = self._begin(batch)
        if self._marker:
            for m in batch:
                if message_id(m) not in self.inner.condemned and self._marker in (m.value() or b""):
                    log.critical("test crash marker at %s: exiting hard", message_id(m))
                    logging.shutdown()
                    os._exit(CRASH_EXIT)
        try:
            self.inner.process(consumer, batch)
        except Exception as exc:
            self._clean.difference_update(began)
            self._end(began, exc)
            raise
        self._clean.update(began)

    # -- the steps ---------------------------------------------------------------------------
    def _narrow(self, consumer: Consumer, batch: Sequence[Message]) -> Sequence[Message]:
        """Step 3: a batch that reaches into a suspect range shrinks to its first such message."""
        firsts: dict[tuple[str, int], int] = {}
        for m in batch:
            tp = (m.topic() or "", m.partition() or 0)
            firsts.setdefault(tp, m.offset() or 0)
        self._learn(firsts)
        for m in batch:
            tp = (m.topic() or "", m.partition() or 0)
            suspect = self._suspect.get(tp)
            if suspect is not None and (m.offset() or 0) > suspect.last:
                del self._suspect[tp]  # the range is behind us: back to whole batches
            elif suspect is not None:
                rest = [x for x in batch if x is not m]
                if rest:
                    rewind(consumer, rest)
                return [m]
        return batch

    def _learn(self, firsts: dict[tuple[str, int], int]) -> None:
        unknown = [tp for tp in firsts if tp not in self._known]
        if not unknown:
            return
        records = self._table.read()
        if records is None:
            return  # unguarded for now; asked again on the next batch
        for tp in unknown:
            rec = records.get(tp)
            self._known[tp] = rec
            if rec is None or rec.attempts <= 0 or rec.first != firsts[tp]:
                continue
            if rec.attempts < NARROW_AFTER:
                log.warning(
                    "%s[%d]: the stage died with offsets %d..%d in flight; retrying them as a "
                    "batch (one at a time if it dies again)",
                    tp[0],
                    tp[1],
                    rec.first,
                    rec.last,
                )
                self._retry[tp] = rec
            else:
                log.warning(
                    "%s[%d]: the stage died %d time(s) in a row with offsets %d..%d in flight; "
                    "taking them one at a time",
                    tp[0],
                    tp[1],
                    rec.attempts,
                    rec.first,
                    rec.last,
                )
                self._suspect[tp] = rec

    def _begin(self, batch: Sequence[Message]) -> dict[tuple[str, int], InFlight]:
        """Step 1 (and 4: a message past its crashes is condemned instead of handled)."""
        bounds: dict[tuple[str, int], tuple[int, int]] = {}  # plain ints: this runs per message
        for m in batch:
            tp, off = (m.topic() or "", m.partition() or 0), m.offset() or 0
            low_high = bounds.get(tp)
            bounds[tp] = (
                (off, off) if low_high is None else (min(low_high[0], off), max(low_high[1], off))
            )
        span = {tp: InFlight(low, high, 0) for tp, (low, high) in bounds.items()}
        for tp, rec in span.items():
            known = self._known.get(tp)
            suspect = self._suspect.get(tp)
            retry = self._retry.pop(tp, None)
            if suspect is not None:
                rec.last = max(rec.last, suspect.last)
            if retry is not None and retry.first == rec.first:
                rec.last = max(rec.last, retry.last)
                rec.attempts, rec.error = retry.attempts + 1, retry.error
            elif known is not None and known.first == rec.first and suspect is not None:
                rec.attempts, rec.error = known.attempts + 1, known.error
            elif suspect is not None:
                # In flight, inside the range, at the deaths that made the range suspect.
                rec.attempts = NARROW_AFTER
            else:
                rec.attempts = 1
        if len(batch) == 1 and len(span) == 1:
            (m,) = batch
            rec = next(iter(span.values()))
            if rec.attempts > self.max_crashes:
                self._quarantine(m, rec)
        if self._table.write(span):
            self._known.update(span)
        return span

    def _quarantine(self, m: Message, rec: InFlight) -> None:
        mid = message_id(m)
        detail = f"the stage died {rec.attempts - 1} times in a row with this message in flight" + (
            f"; last error: {rec.error}" if rec.error else " (killed, no error recorded)"
        )
        log.error("%s[%d]@%d quarantined: %s", mid[0], mid[1], mid[2], detail)
        self.inner.condemned[mid] = InvalidEvent(REASON, detail)
        self.quarantined += 1

    def _end(self, began: dict[tuple[str, int], InFlight], exc: Exception) -> None:
        """Step 2: a transient fault gives the attempt back, and so does a tripped dead-letter
        limit (a deliberate stop: the restart must trip it again on the whole batch, not let a
        hundred more through one at a time); an uncaught error keeps it, with the error, for
        the quarantine's dead letter."""
        if faults.is_transient(exc) or isinstance(exc, DeadLetterLimitExceeded):
            for rec in began.values():
                rec.attempts = max(0, rec.attempts - 1)
        else:
            for rec in began.values():
                rec.error = f"{type(exc).__name__}: {exc}"[:500]
        if self._table.write(began):
            self._known.update(began)
