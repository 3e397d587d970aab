"""The DEP processor on real Kafka and PostgreSQL: transient faults retried without loss, poison
messages dead-lettered, and a zombie's batch rolled back by the offset compare-and-set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import psycopg
from confluent_kafka import TopicPartition

from cli.sample import generate
from common import db
from common.codec import Codec
from common.deadletter import H_REASON, DeadLetterLimit, header
from common.events import FulfillmentEvent, Lineage
from common.kafka import ensure_topics, make_producer
from common.launch import run_store
from common.runloop import Message, Stopper
from common.settings import Settings
from common.store import Cursor, StoreProcessor
from common.topics import Topics
from dep import registry
from dep.fulfillment_state import DEFAULT_LIFECYCLE, FulfillmentState
from dep.lifecycle import Lifecycle
from tests.fakes import FakeConsumer, FakeMessage
from tests.kafka_read import read_topic
from tests.oracle import expected_tables, parse

STAGE = "dep.fulfillment-state"
CODEC = Codec()


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
    with db.connect(settings) as conn:
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


class KillsItsConnection(FulfillmentState):
    """Has PostgreSQL drop the DEP's connection in the middle of the first few batches."""

    def __init__(self, settings: Settings, kills: int) -> None:
        super().__init__(CODEC, Lifecycle.load(DEFAULT_LIFECYCLE))
        self.settings = settings
        self.kills = kills

    def handle(self, events: Sequence[FulfillmentEvent], cur: Cursor) -> None:
        super().handle(events, cur)
        if self.kills:
            self.kills -= 1
            pid = cur.connection.info.backend_pid
            with psycopg.connect(self.settings.database_url, autocommit=True) as admin:
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
    run_store(
        settings,
        STAGE,
        registry.get("fulfillment-state").build(settings, CODEC),
        [Topics(settings.namespace).sink_bucket("demux", "fulfillment")],
        Stopper(),
        max_messages=len(rows) + 2,
        idle_stop_s=20,
    )
    want = expected_tables(rows)
    assert _tables(settings) == (want.event_ids, want.current, want.history)
    dead = read_topic(settings, Topics(settings.namespace).dead_letter(STAGE), expect=2)
    assert sorted((m.value(), header(m.headers(), H_REASON)) for m in dead) == sorted(
        [(poison[0], "not_avro"), (poison[1], "unknown_schema")]
    )


def test_a_zombie_batch_is_rolled_back_when_the_stored_offset_moved(settings: Settings) -> None:
    db.migrate(settings, registry.all_migrations())
    handler = registry.get("fulfillment-state").build(settings, CODEC)
    at = datetime(2020, 1, 18, tzinfo=UTC)
    values = [
        FulfillmentEvent(
            "fulfillment.welcome",
            str(i),
            "f1",
            "Event::Welcome",
            at + timedelta(seconds=i),
            Lineage(str(i), ("gep",), 1),
        ).encode(CODEC)
        for i in range(4)
    ]
    log = {("de", 0): [FakeMessage(v, _topic="de", _offset=i) for i, v in enumerate(values)]}
    consumer = FakeConsumer(log)
    proc = StoreProcessor(
        STAGE,
        "g",
        handler,
        lambda: db.connect(settings),
        make_producer(settings),
        "dlq",
        timeout_s=10,
        limit=DeadLetterLimit(0.5),
        stop=Stopper(),
    )
    consumer.subscribe(["de"], on_assign=proc.assigned)
    first: list[Message] = list(consumer.consume(2))
    proc.process(consumer, first)  # offsets 0-1 committed; stored next offset = 2
    # Another instance took the partition over and committed up to offset 3 meanwhile.
    with db.connect(settings) as conn:
        conn.execute("UPDATE da_offsets SET next_offset = 3 WHERE consumer_group = 'g'")
    proc.process(consumer, list(consumer.consume(2)))  # our stale batch: offsets 2-3
    with db.connect(settings) as conn:
        ids = sorted(str(r[0]) for r in conn.execute("SELECT event_id FROM events"))
    assert ids == ["0", "1"]  # the zombie's batch left no trace
    assert consumer.seeks[-1] == TopicPartition("de", 0, 3)  # resumes where the owner left off
    proc.close()
