"""The crash-loop guard's bookkeeping on real PostgreSQL: deaths counted per message, transient
faults not counted, a message past its deaths quarantined. A "death" is a guard dropped without
finishing its batch, as a killed process drops it; the processor behind it records what it got."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
import pytest
from confluent_kafka import TopicPartition

from common import db
from common.deadletter import DeadLetterLimitExceeded
from common.errors import InvalidEvent, TransientError
from common.guard import REASON, Guarded
from common.runloop import Consumer, Message
from common.settings import Settings
from common.transactional import MessageId, message_id
from tests.fakes import FakeConsumer, messages


@dataclass
class Recorder:
    fail: list[Exception] = field(default_factory=list)
    condemned: dict[MessageId, InvalidEvent] = field(default_factory=dict)
    batches: list[list[int]] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None: ...
    def revoked(self, partitions: list[TopicPartition]) -> None: ...
    def close(self) -> None: ...
    def idle(self, consumer: Consumer, positions: list[TopicPartition]) -> None: ...
    def tick(self, now: datetime, owned: frozenset[tuple[str, int]]) -> None: ...

    def process(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.batches.append([m.offset() or 0 for m in batch])
        for m in batch:
            verdict = self.condemned.pop(message_id(m), InvalidEvent("", ""))
            if verdict.reason == REASON:
                self.quarantined.append(m.offset() or 0)
                self.details.append(str(verdict))


def guard(settings: Settings, inner: Recorder) -> Guarded:
    return Guarded(inner, "g", lambda: db.connect(settings, autocommit=True), max_crashes=3)


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    db.migrate(settings, [])
    return settings


def batch() -> list[Message]:
    return list(messages("in", [b"a", b"b", b"c", b"d"]))


def test_a_message_in_flight_at_every_death_is_quarantined(migrated: Settings) -> None:
    consumer = FakeConsumer({("in", 0): messages("in", [b"a", b"b", b"c", b"d"])})
    died = guard(migrated, Recorder(fail=[RuntimeError("killed")]))
    with pytest.raises(RuntimeError):
        died.process(consumer, batch())  # the whole batch was in flight
    died.close()
    # Restarted after one death: the whole batch once more (most deaths are not the message's
    # doing), and it dies again (a kill leaves no trace).
    g = guard(migrated, Recorder())
    retried = g._narrow(consumer, batch())
    assert [m.offset() for m in retried] == [0, 1, 2, 3]
    g._begin(retried)
    g.close()
    # After two: offset 0 alone, and it dies again.
    g = guard(migrated, Recorder())
    alone = g._narrow(consumer, batch())
    assert [m.offset() for m in alone] == [0]
    g._begin(alone)
    g.close()
    inner = Recorder()
    g = guard(migrated, inner)
    g.process(consumer, batch())
    assert inner.batches == [[0]] and inner.quarantined == [0]
    assert "died 3 times" in inner.details[0]
    assert consumer.seeks[-1] == TopicPartition("in", 0, 1)  # the rest is read again
    g.process(consumer, batch()[1:])  # the rest of the range once in flight: one at a time
    g.process(consumer, batch()[2:])
    assert inner.batches == [[0], [1], [2]] and inner.quarantined == [0]
    g.close()
    inner = Recorder()
    g = guard(migrated, inner)
    g.process(consumer, batch()[3:])  # a clean restart past it: whole batches again
    g.process(consumer, batch())
    g.close()
    assert inner.batches == [[3], [0, 1, 2, 3]] and inner.quarantined == []


def test_one_death_retries_the_range_as_a_batch(migrated: Settings) -> None:
    # A stage killed once (a rollout, a wedged client's exit) is not crawled one at a time.
    consumer = FakeConsumer({("in", 0): messages("in", [b"a", b"b", b"c", b"d"])})
    died = guard(migrated, Recorder(fail=[RuntimeError("killed")]))
    with pytest.raises(RuntimeError):
        died.process(consumer, batch())
    died.close()
    inner = Recorder()
    g = guard(migrated, inner)
    g.process(consumer, batch())
    g.close()
    assert inner.batches == [[0, 1, 2, 3]] and inner.quarantined == []


def test_a_transient_fault_or_a_tripped_limit_is_not_a_death(migrated: Settings) -> None:
    consumer = FakeConsumer({("in", 0): messages("in", [b"a", b"b", b"c", b"d"])})
    for fault in [TransientError("away")] * 4 + [DeadLetterLimitExceeded("mostly invalid")]:
        g = guard(migrated, Recorder(fail=[fault]))
        with pytest.raises(type(fault)):
            g.process(consumer, batch())
        g.close()
    inner = Recorder()
    g = guard(migrated, inner)
    g.process(consumer, batch())
    g.close()
    assert inner.batches == [[0, 1, 2, 3]] and inner.quarantined == []


def test_an_unreachable_database_leaves_batches_unguarded() -> None:
    inner = Recorder()
    g = Guarded(inner, "g", _refuse, max_crashes=3)
    g.process(FakeConsumer({}), batch())
    assert inner.batches == [[0, 1, 2, 3]]


def _refuse() -> psycopg.Connection[tuple[object, ...]]:
    raise psycopg.OperationalError("connection refused")


def test_a_rewind_after_a_clean_stop_is_not_a_crash(migrated: Settings) -> None:
    # da replay moves a stopped DEP back to a batch that had committed: not a crash to narrow.
    consumer = FakeConsumer({("in", 0): messages("in", [b"a", b"b", b"c", b"d"])})
    g = guard(migrated, Recorder())
    g.process(consumer, batch())
    g.close()
    inner = Recorder()
    g = guard(migrated, inner)
    g.process(consumer, batch())
    g.close()
    assert inner.batches == [[0, 1, 2, 3]]
