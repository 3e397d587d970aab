"""What the run loop owns: the consumer's real assignment, every partition of it known to the
processor, each with a stated state.

librdkafka decides the assignment; the rebalance callbacks only tell us about it, and they can
miss: confluent-kafka assigns the partitions itself (from the group's committed offsets) when
``on_assign`` raises or does not assign, and a callback that raises inside ``consume()`` makes
that call discard the messages it had already fetched. So the callbacks here never raise into
librdkafka (a failure is kept and raised by ``take`` once ``consume()`` has returned), and every
turn ``take`` compares what the processor was told with ``consumer.assignment()``:

- a partition assigned without the processor knowing is adopted: taken out of the assignment
  and handed to ``processor.assigned`` like a fresh assignment, so it starts from the offsets
  the processor chooses (logged, counted in ``RunStats.partitions_reconciled``);
- a partition the processor holds but the consumer no longer has is revoked from the processor
  (``RunStats.partitions_released``);
- a fetched message of a partition the processor does not hold is never processed: if the
  partition is still assigned, the adoption rewinds it to the offset the processor chooses
  (``messages_rewound_unowned``); if it was revoked during the same ``consume()``, its new owner
  reads it from the offsets that owner chooses (``messages_after_revoke``). Both are logged.

Invariant, after every ``take``: the keys of ``RunStats.partitions`` are exactly the consumer's
assignment, each with the state it is in (``RunStats.partition_states()``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, KafkaException, TopicPartition

if TYPE_CHECKING:
    from common.runloop import Consumer, Message, Observer, Processor, RunStats

log = logging.getLogger(__name__)

Key = tuple[str, int]
PROCESSING = "processing"
ASSIGNING = "assigning: the processor is choosing start offsets"


class Ownership:
    """The rebalance callbacks and the per-turn reconciliation of one run loop."""

    def __init__(
        self, processor: Processor, stats: RunStats, observer: Observer | None = None
    ) -> None:
        self.processor = processor
        self.stats = stats
        self.observer = observer
        self._failure: BaseException | None = None

    # -- rebalance callbacks (run inside consume()) -----------------------------------------
    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", fmt(partitions))
        self._assign(consumer, partitions)

    def on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", fmt(partitions))
        self._release(partitions)

    def on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s (the group moved on without this member)", fmt(partitions))
        self._release(partitions)

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.stats.partitions[(p.topic, p.partition)] = ASSIGNING
        try:
            self.processor.assigned(consumer, partitions)
        except BaseException as exc:  # kept for take(): raising here would lose fetched messages
            # confluent-kafka assigns them anyway; take() adopts them if the loop goes on.
            for p in partitions:
                self.stats.partitions.pop((p.topic, p.partition), None)
            self._fail(exc)
            return
        for p in partitions:
            self.stats.partitions[(p.topic, p.partition)] = PROCESSING
        if self.observer is not None:
            self.observer.assigned(partitions)

    def _release(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.stats.partitions.pop((p.topic, p.partition), None)
        try:
            self.processor.revoked(partitions)
        except BaseException as exc:
            self._fail(exc)
        if self.observer is not None:
            self.observer.revoked(partitions)

    def _repaired(self, kind: str, count: int) -> None:
        if self.observer is not None:
            self.observer.repaired(kind, count)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc

    # -- every turn ------------------------------------------------------------------------
    def take(self, consumer: Consumer, polled: Sequence[Message]) -> list[Message]:
        """The messages of ``polled`` to process, after reconciling the processor's partitions
        with the consumer's assignment. Raises what a rebalance callback raised."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        assigned = {(p.topic, p.partition) for p in consumer.assignment()}
        batch: list[Message] = []
        unowned: dict[Key, int] = {}
        after_revoke = rewound = 0
        for m in polled:
            if not usable(m):
                continue
            key, offset = (m.topic() or "", m.partition() or 0), m.offset() or 0
            if key in self.stats.partitions:
                batch.append(m)
            elif key in assigned:
                unowned[key] = min(unowned.get(key, offset), offset)
                rewound += 1
            else:
                after_revoke += 1
        if after_revoke:
            self.stats.messages_after_revoke += after_revoke
            log.info(
                "%d fetched messages of revoked partitions left to their new owner", after_revoke
            )
        for (topic, partition), offset in sorted(unowned.items()):
            # Rewound by the adoption below: the partition restarts from the processor's offset.
            log.warning(
                "%s[%d]: fetched from offset %d while not held by the processor; rewound",
                topic,
                partition,
                offset,
            )
        self.stats.messages_rewound_unowned += rewound
        if rewound:
            self._repaired("rewound", rewound)
        self._reconcile(consumer, assigned)
        return batch

    def _reconcile(self, consumer: Consumer, assigned: set[Key]) -> None:
        held = set(self.stats.partitions)
        stale = sorted(held - assigned)
        if stale:
            log.error(
                "the processor held %s, which the consumer no longer has; released",
                fmt([TopicPartition(t, p) for t, p in stale]),
            )
            self.stats.partitions_released += len(stale)
            self._repaired("released", len(stale))
            self._release([TopicPartition(t, p) for t, p in stale])
        strays = sorted(assigned - held)
        if not strays:
            return
        parts = [TopicPartition(t, p) for t, p in strays]
        log.error("%s assigned without the processor knowing; adopting them", fmt(parts))
        self.stats.partitions_reconciled += len(parts)
        self._repaired("adopted", len(parts))
        # Out of the assignment and in again through the processor: it sets the start offsets,
        # exactly as after a rebalance.
        consumer.incremental_unassign(parts)
        self._assign(consumer, parts)
        now = {(p.topic, p.partition) for p in consumer.assignment()}
        missing = [p for p in parts if (p.topic, p.partition) not in now]
        if missing:  # the processor starts from the group's offsets, as the callback's fallback
            consumer.incremental_assign(missing)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def backing_off(self, reason: str) -> None:
        """Every held partition waits for the batch in hand to be retried."""
        for key in self.stats.partitions:
            self.stats.partitions[key] = f"backing off: {reason}"

    def resumed(self) -> None:
        for key in self.stats.partitions:
            self.stats.partitions[key] = PROCESSING


def usable(m: Message) -> bool:
    err = m.error()
    if err is None:
        return True
    if err.fatal():
        raise KafkaException(err)
    if err.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer: %s", err)
    return False


def fmt(partitions: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
