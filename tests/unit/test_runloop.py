from __future__ import annotations

from collections.abc import Sequence

import psycopg
import pytest
from confluent_kafka import TopicPartition

from common.deadletter import DeadLetterLimit, DeadLetterLimitExceeded
from common.errors import TransientError
from common.runloop import Consumer, Message, Stopper, is_transient, run
from tests.fakes import FakeConsumer, messages


class Recorder:
    """A processor that commits by recording, failing on the batches it is told to."""

    def __init__(self, fail: list[BaseException] | None = None) -> None:
        self.fail = list(fail or [])
        self.committed: list[bytes | None] = []
        self.closed = False

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        pass

    def revoked(self, partitions: list[TopicPartition]) -> None:
        pass

    def process(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.committed += [m.value() for m in batch]

    def tick(self, now: float) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _consumer(n: int) -> FakeConsumer:
    return FakeConsumer({("in", 0): messages("in", [str(i).encode() for i in range(n)])})


def test_every_message_is_processed_once_in_order() -> None:
    consumer, proc = _consumer(25), Recorder()
    stats = run(
        consumer, proc, ["in"], batch_size=10, poll_timeout_s=0.01, stop=Stopper(), max_messages=25
    )
    assert proc.committed == [str(i).encode() for i in range(25)]
    assert stats.batches == 3 and consumer.closed and proc.closed


def test_a_transient_fault_retries_the_same_batch_without_skipping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Stopper, "wait", lambda self, s: False)  # no real back-off sleep
    consumer = _consumer(20)
    proc = Recorder([psycopg.OperationalError("database down"), TransientError("broker away")])
    stats = run(
        consumer, proc, ["in"], batch_size=10, poll_timeout_s=0.01, stop=Stopper(), max_messages=20
    )
    assert proc.committed == [str(i).encode() for i in range(20)]
    assert stats.retries == 2
    assert consumer.seeks == [TopicPartition("in", 0, 0), TopicPartition("in", 0, 0)]


def test_a_bug_stops_the_loop_without_committing() -> None:
    consumer, proc = _consumer(5), Recorder([KeyError("bug")])
    with pytest.raises(KeyError):
        run(
            consumer,
            proc,
            ["in"],
            batch_size=10,
            poll_timeout_s=0.01,
            stop=Stopper(),
            max_messages=5,
        )
    assert proc.committed == [] and consumer.closed


def test_stop_flag_ends_the_loop_between_batches() -> None:
    stop = Stopper()
    consumer, proc = _consumer(30), Recorder()
    run(
        consumer,
        proc,
        ["in"],
        batch_size=10,
        poll_timeout_s=0.01,
        stop=stop,
        on_batch=lambda stats: stop.set(),
    )
    assert len(proc.committed) == 10


def test_classification() -> None:
    assert is_transient(psycopg.OperationalError("x"))
    assert is_transient(TransientError("x"))
    assert not is_transient(ValueError("x"))
    assert not is_transient(psycopg.errors.UniqueViolation("x"))


def test_dead_letter_limit_trips_only_on_a_high_share() -> None:
    limit = DeadLetterLimit(0.5, window=100, min_count=10)
    for i in range(1000):  # one in five bad: never trips
        limit.record(i % 5 == 0)
    with pytest.raises(DeadLetterLimitExceeded):
        for _ in range(100):
            limit.record(True)
