"""The run loop's ownership (``common.assignment``): what it processes is the consumer's real
assignment, and no fetched message is dropped unseen. The fake consumer changes its assignment
the way confluent-kafka does, the fallback of a failed callback included."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import pytest
from confluent_kafka import TopicPartition

from common.errors import TransientError
from common.runloop import Consumer, Message, RunStats, Stopper, StopRequested, run
from tests.fakes import FakeConsumer, messages


class Stored:
    """A processor that, like the PostgreSQL one, starts each partition from its own stored
    offset; records what it processed, what it was told, and the partition states it saw."""

    def __init__(self, stored: dict[int, int] | None = None) -> None:
        self.stored = dict(stored or {})
        self.processed: list[tuple[int, int]] = []  # (partition, offset)
        self.assigned_calls: list[list[int]] = []
        self.revoked_calls: list[list[int]] = []
        self.fail_assign: list[BaseException] = []
        self.fail_call: dict[int, BaseException] = {}  # process call number -> its exception
        self.states: list[list[tuple[str, int, str]]] = []
        self.stats: RunStats | None = None

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned_calls.append([p.partition for p in partitions])
        if self.fail_assign:
            raise self.fail_assign.pop(0)
        consumer.incremental_assign(
            [
                TopicPartition(p.topic, p.partition, self.stored.get(p.partition, 0))
                for p in partitions
            ]
        )

    def revoked(self, partitions: list[TopicPartition]) -> None:
        self.revoked_calls.append([p.partition for p in partitions])

    def process(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        self.states.append([] if self.stats is None else self.stats.partition_states())
        if len(self.states) in self.fail_call:
            raise self.fail_call[len(self.states)]
        for m in batch:
            self.processed.append((m.partition() or 0, m.offset() or 0))
            self.stored[m.partition() or 0] = (m.offset() or 0) + 1

    def idle(self, consumer: Consumer, positions: list[TopicPartition]) -> None: ...

    def tick(self, now: datetime, owned: frozenset[tuple[str, int]]) -> None:
        pass

    def close(self) -> None:
        pass


def _consumer(partitions: int, per_partition: int) -> FakeConsumer:
    log = {
        ("in", p): messages("in", [f"{p}-{i}".encode() for i in range(per_partition)], p)
        for p in range(partitions)
    }
    return FakeConsumer(log)


def _run(
    consumer: FakeConsumer, proc: Stored, after_batch: Callable[[RunStats], None] | None = None
) -> RunStats:
    """Run until idle, checking the invariant after every batch: the partitions with a state
    are exactly the consumer's assignment."""
    broken: list[str] = []

    def on_batch(stats: RunStats) -> None:
        proc.stats = stats
        held = {(t, p) for t, p, _ in stats.partition_states()}
        if held != {(tp.topic, tp.partition) for tp in consumer.assignment()}:
            broken.append(f"held {held}, assigned {consumer.assignment()}")
        if after_batch is not None:
            after_batch(stats)

    stop = Stopper()
    stop.wait = lambda seconds: False  # type: ignore[method-assign]  # no real back-off
    stats = run(
        consumer,
        proc,
        ["in"],
        batch_size=4,
        poll_timeout_s=0.01,
        stop=stop,
        idle_stop_s=0.3,
        on_batch=on_batch,
    )
    assert broken == []
    return stats


def test_a_partition_assigned_without_the_processor_knowing_is_adopted() -> None:
    consumer = _consumer(2, 6)
    consumer.group = [("in", 0)]
    # Partition 1 joins the assignment with no callback (as confluent-kafka's fallback does
    # after a failed on_assign), at the group's committed offset 0; the processor's own store
    # says it resumes at 2.
    consumer.rebalance("unseen", [TopicPartition("in", 1)])
    proc = Stored(stored={1: 2})
    stats = _run(consumer, proc)
    assert sorted(proc.processed) == [(0, i) for i in range(6)] + [(1, i) for i in range(2, 6)]
    assert proc.assigned_calls == [[0], [1]]
    assert stats.partitions_reconciled == 1
    assert stats.partition_states() == [("in", 0, "processing"), ("in", 1, "processing")]


class Repairs:
    """An observer that keeps only what the loop repaired."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def assigned(self, partitions: list[TopicPartition]) -> None: ...
    def revoked(self, partitions: list[TopicPartition]) -> None: ...
    def turned(self, consumer: Consumer) -> None: ...
    def batch(self, batch: Sequence[Message], seconds: float) -> None: ...
    def retried(self, exc: BaseException) -> None: ...

    def repaired(self, kind: str, count: int) -> None:
        self.seen.append((kind, count))


def test_every_repair_is_told_to_the_observer_for_its_metric() -> None:
    consumer = _consumer(2, 6)
    consumer.group = [("in", 0)]
    consumer.rebalance("unseen", [TopicPartition("in", 1)])
    repairs = Repairs()
    stop = Stopper()
    run(
        consumer,
        Stored(),
        ["in"],
        batch_size=4,
        poll_timeout_s=0.01,
        stop=stop,
        idle_stop_s=0.3,
        observer=repairs,
    )
    assert ("adopted", 1) in repairs.seen


def test_fetched_messages_of_a_partition_not_held_are_rewound_and_processed_later() -> None:
    consumer = _consumer(2, 6)
    consumer.group = [("in", 0)]
    proc = Stored()

    def add_partition_1_unseen(stats: RunStats) -> None:
        if stats.batches == 1:
            consumer.assign_unseen([TopicPartition("in", 1)])

    stats = _run(consumer, proc, add_partition_1_unseen)
    assert sorted(proc.processed) == [(0, i) for i in range(6)] + [(1, i) for i in range(6)]
    assert stats.messages_rewound_unowned > 0 and stats.partitions_reconciled == 1


def test_a_partition_the_consumer_dropped_is_released_from_the_processor() -> None:
    consumer = _consumer(2, 4)
    proc = Stored()

    def drop_partition_1_unseen(stats: RunStats) -> None:
        if stats.batches == 1:
            consumer.assigned.discard(("in", 1))

    stats = _run(consumer, proc, drop_partition_1_unseen)
    assert stats.partitions_released == 1 and proc.revoked_calls == [[1]]
    assert stats.partition_states() == [("in", 0, "processing")]


def test_messages_fetched_before_a_revocation_are_left_to_the_new_owner() -> None:
    consumer = _consumer(1, 8)
    proc = Stored()

    def revoke_after_the_first_batch(stats: RunStats) -> None:
        if stats.batches == 1:
            consumer.rebalance("revoke", [TopicPartition("in", 0)])

    stats = _run(consumer, proc, revoke_after_the_first_batch)
    assert proc.processed == [(0, i) for i in range(4)]
    assert stats.messages_after_revoke == 4 and stats.partition_states() == []
    assert proc.revoked_calls == [[0]]


def test_a_stop_while_assigning_ends_the_loop_cleanly_without_processing() -> None:
    consumer = _consumer(2, 4)
    proc = Stored()
    proc.fail_assign = [StopRequested("stopped while the database was unreachable")]
    stats = _run(consumer, proc)
    assert proc.processed == [] and stats.batches == 0 and consumer.closed


def test_a_bug_in_the_assignment_callback_ends_the_loop_after_consume_returns() -> None:
    consumer = _consumer(1, 4)
    proc = Stored()
    proc.fail_assign = [KeyError("bug in assigned")]
    with pytest.raises(KeyError):
        _run(consumer, proc)
    assert proc.processed == [] and consumer.closed


def test_partition_states_say_why_a_partition_waits() -> None:
    consumer = _consumer(1, 12)
    proc = Stored()
    proc.fail_call = {2: TransientError("database down")}
    _run(consumer, proc)
    assert proc.processed == [(0, i) for i in range(12)]
    assert proc.states[1] == [("in", 0, "processing")]  # the call that fails
    assert proc.states[2] == [("in", 0, "backing off: database down")]  # its retry
    assert proc.states[3] == [("in", 0, "processing")]
