"""The DEP processor on real Kafka and PostgreSQL: transient faults retried without loss, poison
messages dead-lettered, and a zombie's batch rolled back by the offset compare-and-set."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from cli.sample.fulfillments import generate
from common import db
from common.codec import Codec
from common.deadletter import H_REASON, DeadLetterLimit, header
from common.events import FulfillmentEvent, Lineage
from common.kafka import ensure_topics, make_producer
from common.launch import run_store
from common.names import dep_stage
from common.runloop import Message, Stopper, rewind
from common.settings import Settings
from common.store import Cursor, StoreProcessor
from common.topics import Topics
from dep import registry
from dep.fulfillment_state import DEFAULT_LIFECYCLE, Arrived, FulfillmentState
from dep.lifecycle import Lifecycle
from tests.fakes import FakeConsumer, FakeMessage
from tests.kafka_read import read_topic
from tests.oracle import expected_tables, parse

DEP = "fulfillment-state"
STAGE = dep_stage(DEP)
CODEC = Codec()


@pytest.fixture
def settings(dep_settings: Settings) -> Settings:
    """Each test twice: the DEP on the shared database, and on a PostgreSQL of its own."""
    return dep_settings


def _de(row: dict[str, str]) -> FulfillmentEvent:
    return FulfillmentEvent(
        name="fulfillment.x",
        event_id=row["id"],
        fulfillment_id=row["fulfillment_id"],
        event_type=row["type"],
        occurred_at=parse(row["created_at"]),
        lineage=Lineage(row["id"], ("gep", "demux"), 1),
    )


def _setup(settings: Settings, rows: list[dict[str, str]], extra: Sequence[bytes] = ()) -> str:
    topic = Topics(settings.namespace).sink_bucket("demux", "fulfillment")
    ensure_topics(settings, [topic, Topics(settings.namespace).dead_letter(STAGE)])
    db.migrate(settings, registry.all_migrations())
    producer = make_producer(settings)
    for r in rows:
        producer.produce(topic, _de(r).encode(CODEC), r["fulfillment_id"].encode())
    for value in extra:
        producer.produce(topic, value, b"poison")
    assert producer.flush(10) == 0
    return topic


def _tables(
    settings: Settings,
) -> tuple[set[str], dict[str, tuple[str, datetime]], dict[tuple[str, str], int]]:
    with db.connect(settings, dep=DEP) as conn:
        ids = {str(r[0]) for r in conn.execute("SELECT event_id FROM events")}
        cur = {
            str(r[0]): (str(r[1]), r[2])
            for r in conn.execute(
                "SELECT fulfillment_id, state, state_start_time FROM current_fulfillments"
            )
        }
        hist = {
            (str(r[0]), str(r[1])): int(str(r[2]))
            for r in conn.execute(
                "SELECT fulfillment_id, state, time_in_state FROM fulfillments_history"
            )
        }
    return ids, cur, hist  # type: ignore[return-value]


def _run_until_done(
    settings: Settings, rows: list[dict[str, str]], extra: int
) -> list[tuple[bytes | None, str | None]]:
    """Run the DEP over the rows and ``extra`` poison messages; check the tables against the
    independent computation; return the dead letters as (original value, reason)."""
    run_store(
        settings,
        STAGE,
        registry.get("fulfillment-state").build(settings, CODEC),
        [Topics(settings.namespace).sink_bucket("demux", "fulfillment")],
        Stopper(),
        max_messages=len(rows) + extra,
        idle_stop_s=20,
    )
    want = expected_tables(rows)
    assert _tables(settings) == (want.event_ids, want.current, want.history)
    dead = read_topic(settings, Topics(settings.namespace).dead_letter(STAGE), expect=extra)
    return sorted((m.value(), header(m.headers(), H_REASON)) for m in dead)


class KillsItsConnection(FulfillmentState):
    """Has PostgreSQL drop the DEP's connection in the middle of the first few batches."""

    def __init__(self, settings: Settings, kills: int) -> None:
        super().__init__(CODEC, Lifecycle.load(DEFAULT_LIFECYCLE))
        self.settings = settings
        self.kills = kills

    def handle(self, events: Sequence[Arrived], cur: Cursor) -> None:
        super().handle(events, cur)
        if self.kills:
            self.kills -= 1
            pid = cur.connection.info.backend_pid
            with psycopg.connect(self.settings.database_url_for(DEP), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            cur.execute("SELECT 1")  # the next statement finds the connection gone


def test_a_dropped_database_connection_is_retried_without_loss(settings: Settings) -> None:
    rows = [{k: str(v) for k, v in asdict(r).items()} for r in generate(seed=3, count=150)]
    _setup(settings, rows + rows[:50])  # some duplicates too
    stop = Stopper()
    handler = KillsItsConnection(settings, kills=3)
    stats = run_store(
        settings,
        STAGE,
        handler,
        [Topics(settings.namespace).sink_bucket("demux", "fulfillment")],
        stop,
        max_messages=len(rows) + 50,
        idle_stop_s=20,
    )
    assert stats.retries >= 3 and handler.kills == 0
    want = expected_tables(rows)
    assert _tables(settings) == (want.event_ids, want.current, want.history)


def test_poison_messages_are_dead_lettered_and_the_rest_processed(settings: Settings) -> None:
    rows = [{k: str(v) for k, v in asdict(r).items()} for r in generate(seed=4, count=30)]
    poison = [b"not avro at all", b"\xc3\x01" + b"\x00" * 8 + b"unknown schema"]
    _setup(settings, rows, poison)
    assert _run_until_done(settings, rows, extra=2) == sorted(
        [(poison[0], "not_avro"), (poison[1], "unknown_schema")]
    )


def test_a_zombie_batch_is_rolled_back_when_the_stored_offset_moved(settings: Settings) -> None:
    db.migrate(settings, registry.all_migrations())
    handler = registry.get("fulfillment-state").build(settings, CODEC)
    at = datetime(2020, 1, 18, tzinfo=UTC)

    def de(i: int) -> bytes:
        return FulfillmentEvent(
            "fulfillment.welcome",
            str(i),
            f"f{i}",
            "Event::Welcome",
            at + timedelta(seconds=i),
            Lineage(str(i), ("gep",), 1),
        ).encode(CODEC)

    log = {  # partition 0: events 0-3; partition 1 (no stored offset yet): events 10-11
        ("de", 0): [FakeMessage(de(i), _topic="de", _offset=i) for i in range(4)],
        ("de", 1): [
            FakeMessage(de(10 + i), _topic="de", _partition=1, _offset=i) for i in range(2)
        ],
    }
    consumer = FakeConsumer(log)
    proc = StoreProcessor(
        STAGE,
        "g",
        handler,
        lambda: db.connect(settings, dep=DEP),
        make_producer(settings),
        "dlq",
        timeout_s=10,
        limit=DeadLetterLimit(0.5),
        stop=Stopper(),
    )
    consumer.subscribe(["de"], on_assign=proc.assigned)
    proc.process(consumer, list(consumer.consume(2)))  # 0-1 committed; stored next offset = 2
    # Another instance took partition 0 over and committed up to offset 3 meanwhile.
    with db.connect(settings, dep=DEP) as conn:
        conn.execute("UPDATE da_offsets SET next_offset = 3 WHERE partition = 0")
    stale: list[Message] = list(consumer.consume(10))  # 2-3 of partition 0, 10-11 of 1
    proc.process(consumer, stale)  # conflict: nothing of it may stick, nothing may be skipped
    with db.connect(settings, dep=DEP) as conn:
        assert sorted(str(r[0]) for r in conn.execute("SELECT event_id FROM events")) == ["0", "1"]
    proc.process(consumer, list(consumer.consume(10)))  # resumes: 3 of p0, 10-11 of p1
    with db.connect(settings, dep=DEP) as conn:
        ids = sorted(str(r[0]) for r in conn.execute("SELECT event_id FROM events"))
        stored = {r[0]: r[1] for r in conn.execute("SELECT partition, next_offset FROM da_offsets")}
    assert ids == ["0", "1", "10", "11", "3"]  # 2 was the other instance's to apply
    assert stored == {0: 4, 1: 2}
    proc.close()


def test_an_event_the_database_rejects_is_dead_lettered(settings: Settings) -> None:
    rows = [{k: str(v) for k, v in asdict(r).items()} for r in generate(seed=6, count=20)]
    nul = FulfillmentEvent(
        "fulfillment.welcome",
        "nul-1",
        "f-nul",
        "Event::Welcome",
        datetime(2020, 1, 18, tzinfo=UTC),
        Lineage("nul-1", ("gep",), 1),
        attributes={"note": "a\x00b"},
    ).encode(CODEC)
    _setup(settings, rows[:10], [nul])
    _setup(settings, rows[10:])
    assert _run_until_done(settings, rows, extra=1) == [(nul, "rejected_by_database")]


class DropsTheConnectionAfterFlush:
    """A producer that, once the broker has acknowledged what it flushed (the batch's dead
    letters), has PostgreSQL drop the DEP's connection: the batch's commit then fails after its
    dead letters are out, as when the database restarts at that moment."""

    def __init__(self, settings: Settings, drops: int) -> None:
        self.inner = make_producer(settings)
        self.settings = settings
        self.drops = drops
        self.backend_pid: Callable[[], int] = lambda: 0

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.inner.produce(*args, **kwargs)

    def flush(self, timeout: float) -> int:
        remaining = self.inner.flush(timeout)
        if self.drops:
            self.drops -= 1
            with psycopg.connect(self.settings.database_url_for(DEP), autocommit=True) as admin:
                # The backend ends when it gets to the signal: wait for it, so the commit that
                # follows cannot slip in first.
                admin.execute("SELECT pg_terminate_backend(%s, 10000)", (self.backend_pid(),))
        return remaining


def test_a_retried_batch_does_not_dead_letter_again(settings: Settings) -> None:
    rows = [{k: str(v) for k, v in asdict(r).items()} for r in generate(seed=7, count=6)]
    poison = b"not avro at all"
    db.migrate(settings, registry.all_migrations())
    dlq = Topics(settings.namespace).dead_letter(STAGE)
    ensure_topics(settings, [dlq])
    values = (
        [_de(r).encode(CODEC) for r in rows[:3]]
        + [poison]
        + [_de(r).encode(CODEC) for r in rows[3:]]
    )
    consumer = FakeConsumer(
        {("de", 0): [FakeMessage(v, _topic="de", _offset=i) for i, v in enumerate(values)]}
    )
    producer = DropsTheConnectionAfterFlush(settings, drops=1)
    proc = StoreProcessor(
        STAGE,
        "g",
        registry.get(DEP).build(settings, CODEC),
        lambda: db.connect(settings, dep=DEP),
        producer,  # type: ignore[arg-type]
        dlq,
        timeout_s=10,
        limit=DeadLetterLimit(0.5),
        stop=Stopper(),
    )
    producer.backend_pid = lambda: proc._db().info.backend_pid
    consumer.subscribe(["de"], on_assign=proc.assigned)
    batch: list[Message] = list(consumer.consume(100))
    assert len(batch) == len(values), batch
    with pytest.raises(psycopg.OperationalError):  # after the dead letter was acknowledged
        proc.process(consumer, batch)
    rewind(consumer, batch)
    proc.process(consumer, list(consumer.consume(100)))
    proc.close()
    with db.connect(settings, dep=DEP) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (len(rows),)
    letters = read_topic(settings, dlq, expect=1, linger_s=3)
    assert [(m.value(), header(m.headers(), H_REASON)) for m in letters] == [(poison, "not_avro")]
