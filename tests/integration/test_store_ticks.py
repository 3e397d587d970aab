"""The store processor's wall-clock tick on real Kafka and PostgreSQL: a handler's timers run in
a transaction of their own with the partitions this instance still owns (not one another
instance has committed past), at most once per interval, and what they put in the outbox is
relayed by the same tick, with no message consumed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from common import db
from common.deadletter import DeadLetterLimit
from common.kafka import ensure_topics, make_producer
from common.outbox import Outbox, OutboxMessage, OutboxRelay
from common.runloop import Message, Stopper
from common.settings import Settings
from common.store import Cursor, StoreProcessor
from common.ticks import Owned, ReadTo
from common.topics import Topics
from dep import registry
from tests.fakes import FakeConsumer, FakeMessage
from tests.kafka_read import read_topic


class Timers:
    """Handles nothing; each tick records what it was given and emits one message."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.ticks: list[Owned] = []
        self.read_to: list[set[tuple[str, int]]] = []
        self.outbox = Outbox("timers")

    def decode(self, msg: Message) -> bytes:
        return msg.value() or b""

    def handle(self, events: Sequence[bytes], cur: Cursor) -> None:
        pass

    def tick(self, now: datetime, owned: Owned, read_to: ReadTo, cur: Cursor) -> None:
        self.ticks.append(owned)
        self.read_to.append(set(read_to))
        self.outbox.add(cur, [OutboxMessage(self.topic, None, f"tick {len(self.ticks)}".encode())])


def test_timers_run_for_the_partitions_still_owned_and_relay_at_once(settings: Settings) -> None:
    out = Topics(settings.namespace).sink_bucket("dep", "timer")
    ensure_topics(settings, [out])
    db.migrate(settings, registry.all_migrations())
    producer = make_producer(settings)
    timers = Timers(out)

    def processor(interval_s: float) -> StoreProcessor[bytes]:
        return StoreProcessor(
            "dep.timers",
            "g",
            timers,
            lambda: db.connect(settings),
            producer,
            "dlq",
            timeout_s=10,
            limit=DeadLetterLimit(0.5),
            stop=Stopper(),
            after_commit=OutboxRelay("timers", producer, timeout_s=10).relay,
            tick_interval_s=interval_s,
        )

    consumer = FakeConsumer(
        {("de", p): [FakeMessage(b"x", _topic="de", _partition=p)] for p in (0, 1)}
    )
    proc = processor(3600)
    consumer.subscribe(["de"], on_assign=proc.assigned)
    proc.process(consumer, [FakeMessage(b"x", _topic="de")])  # p0 stored at 1; p1 none yet
    both, now = frozenset({("de", 0), ("de", 1)}), datetime.now(UTC)
    proc.tick(now, both)
    proc.tick(now, both)  # within the interval: nothing
    assert timers.ticks == [both]
    # p0's one message is applied: read to its end; p1 was never read
    assert timers.read_to == [{("de", 0)}]
    assert [m.value() for m in read_topic(settings, out, expect=1, linger_s=0.5)] == [b"tick 1"]
    with db.connect(settings) as conn:
        assert conn.execute("SELECT count(*) FROM da_outbox").fetchall() == [(0,)]
        # another instance took partition 0 over and committed there
        conn.execute("UPDATE da_offsets SET next_offset = 5 WHERE partition = 0")
    proc.close()
    proc = processor(0)
    consumer = FakeConsumer(dict(consumer.log))  # a restarted instance: a new consumer
    consumer.subscribe(["de"], on_assign=proc.assigned)  # sees p0 at 5: its own again
    proc.process(consumer, [FakeMessage(b"x", _topic="de", _partition=1)])  # p1 stored at 1
    with db.connect(settings) as conn:
        conn.execute("UPDATE da_offsets SET next_offset = 9 WHERE partition = 1")
    proc.tick(now, both)
    proc.tick(now, frozenset())  # owns nothing: no timer runs
    assert timers.ticks == [both, frozenset({("de", 0)})]
    # p0's stored offset is past its end: all it holds is applied, though this instance read
    # none of it (as after a restart with nothing left to read); p1 is not its own.
    assert timers.read_to[1] == {("de", 0)}
    proc.close()
