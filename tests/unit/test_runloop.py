from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from confluent_kafka import TopicPartition

from common.deadletter import DeadLetterLimit, DeadLetterLimitExceeded
from common.errors import TransientError
from common.runloop import Consumer, Message, Stopper, is_transient, run
from tests.fakes import FakeConsumer, FakeMessage, messages


class Recorder:
    """A processor that commits by recording, failing on the batches it is told to."""

    def __init__(self, fail: list[BaseException] | None = None) -> None:
        self.fail = list(fail or [])
        self.committed: list[bytes | None] = []
        self.closed = False
        self.idle_positions: list[TopicPartition] = []
        self.ticks: list[tuple[datetime, frozenset[tuple[str, int]], int]] = []

    def idle(self, consumer: Consumer, positions: list[TopicPartition]) -> None:
        self.idle_positions += positions

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        pass

    def revoked(self, partitions: list[TopicPartition]) -> None:
        pass

    def process(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.committed += [m.value() for m in batch]

    def tick(self, now: datetime, owned: frozenset[tuple[str, int]]) -> None:
        self.ticks.append((now, owned, len(self.committed)))

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


def test_an_idle_loop_hands_the_positions_past_commit_markers_to_the_processor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("common.runloop.IDLE_ADVANCE_S", 0.0)
    consumer, proc = _consumer(3), Recorder()
    consumer.log[("in", 0)].append(messages("in", [b"marker"])[0])  # never handed out ...
    original = consumer.consume

    def consume(num_messages: int = 1, timeout: float = -1) -> list[object]:
        got = original(num_messages, timeout)
        return [m for m in got if m.value() != b"marker"]  # ... like a transaction's marker

    monkeypatch.setattr(consumer, "consume", consume)
    run(consumer, proc, ["in"], batch_size=10, poll_timeout_s=0.01, stop=Stopper(), idle_stop_s=0.2)
    assert proc.committed == [b"0", b"1", b"2"]
    assert proc.idle_positions and proc.idle_positions[-1].offset == 4


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


def test_the_processor_ticks_on_every_turn_also_when_nothing_arrives() -> None:
    consumer, proc = _consumer(0), Recorder()
    consumer.log[("in", 1)] = []
    before = datetime.now(UTC)
    run(consumer, proc, ["in"], batch_size=10, poll_timeout_s=0.01, stop=Stopper(), idle_stop_s=0.2)
    assert proc.committed == [] and len(proc.ticks) > 1  # no message ever came
    assert {owned for _, owned, _ in proc.ticks} == {frozenset({("in", 0), ("in", 1)})}
    assert all(before <= now <= datetime.now(UTC) for now, _, _ in proc.ticks)


def test_ticks_go_on_between_batches_while_messages_flow() -> None:
    consumer, proc = _consumer(30), Recorder()
    run(consumer, proc, ["in"], batch_size=10, poll_timeout_s=0.01, stop=Stopper(), max_messages=30)
    assert [seen for _, _, seen in proc.ticks] == [0, 10, 20]  # one per turn, before its batch


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


def _polls(consumer: FakeConsumer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """Every ``consume`` call's batch size and timeout, as the loop makes them."""
    original = consumer.consume
    polls: list[tuple[int, float]] = []

    def consume(num_messages: int = 1, timeout: float = -1) -> list[object]:
        polls.append((num_messages, timeout))
        return original(num_messages, timeout)

    monkeypatch.setattr(consumer, "consume", consume)
    return polls


def _lingering(
    monkeypatch: pytest.MonkeyPatch, *, poll_timeout_s: float, batch_linger_s: float, **until: Any
) -> list[tuple[int, float]]:
    """Five messages through the loop with a linger; its polls. Every message is processed."""
    consumer, proc = _consumer(5), Recorder()
    polls = _polls(consumer, monkeypatch)
    run(
        consumer,
        proc,
        ["in"],
        batch_size=10,
        poll_timeout_s=poll_timeout_s,
        batch_linger_s=batch_linger_s,
        stop=Stopper(),
        **until,
    )
    assert proc.committed == [str(i).encode() for i in range(5)]
    return polls


def test_an_idle_poll_takes_the_first_event_at_once_then_lingers_while_events_arrive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A batch poll returns when it is full or its timeout is over: with events trickling in, a
    # full batch's wait at every stage would hold each event for it.
    consumer, proc = _consumer(15), Recorder()
    polls = _polls(consumer, monkeypatch)
    original = consumer.consume

    def consume(num_messages: int = 1, timeout: float = -1) -> list[object]:
        if len(polls) == 4:  # gone idle: three more events arrive
            consumer.log[("in", 0)] += [
                FakeMessage(str(i).encode(), _topic="in", _offset=i) for i in (15, 16, 17)
            ]
        return original(num_messages, timeout)

    monkeypatch.setattr(consumer, "consume", consume)
    stats = run(
        consumer,
        proc,
        ["in"],
        batch_size=10,
        poll_timeout_s=0.04,
        batch_linger_s=0.01,
        stop=Stopper(),
        idle_stop_s=0.15,
    )
    # the start: a whole batch, then batches within the linger (10, 5, none); idle: one event
    # at once, the rest within the linger; idle again
    assert polls[:7] == [
        (10, 0.04),
        (10, 0.01),
        (10, 0.01),
        (1, 0.04),
        (1, 0.04),
        (10, 0.01),
        (10, 0.01),
    ]
    assert set(polls[7:]) == {(1, 0.04)}
    assert proc.committed == [str(i).encode() for i in range(18)]
    assert stats.batches == 4


def test_the_first_poll_takes_a_whole_batch_as_a_restarted_stage_must(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The crash-loop guard knows a batch the stage died on by its first offset; a restarted
    # stage taking one event first, then the rest, would never retry the same batch.
    polls = _lingering(monkeypatch, poll_timeout_s=0.04, batch_linger_s=0.01, max_messages=5)
    assert polls == [(10, 0.04)]


def test_the_linger_is_never_longer_than_the_poll_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    polls = _lingering(monkeypatch, poll_timeout_s=0.02, batch_linger_s=5.0, idle_stop_s=0.1)
    assert max(timeout for _, timeout in polls) == 0.02
