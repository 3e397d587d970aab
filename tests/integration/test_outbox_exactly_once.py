"""The exactly-once outbox relay on real Kafka and PostgreSQL: a relay that dies after its Kafka
transaction committed but before it deleted the rows does not make the next relay send them
again; a transaction that never committed is never seen."""

from __future__ import annotations

from common import db
from common.kafka import ensure_topics, make_consumer, make_producer
from common.outbox import Outbox, OutboxMessage, OutboxRelay, RelayMarker, decode_ids, encode_ids
from common.settings import Settings
from tests.kafka_read import read_topic


def relay(settings: Settings, topic: str, txn: str) -> OutboxRelay:
    marker = RelayMarker(make_consumer(settings, f"{settings.namespace}.marker"), topic)
    producer = make_producer(settings, transactional_id=txn)
    return OutboxRelay("eo-test", producer, timeout_s=20, marker=marker, batch_size=4)


def rows(settings: Settings) -> int:
    with db.connect(settings) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM da_outbox WHERE owner = 'eo-test'"
        ).fetchone() or (0,)
    return int(str(n))


def test_a_batch_sent_before_a_crash_is_not_sent_again(settings: Settings) -> None:
    db.migrate(settings, [])
    topic = f"{settings.namespace}.eo"
    ensure_topics(settings, [topic], partitions=1)
    with db.connect(settings) as conn, conn.transaction():
        Outbox("eo-test").add(
            conn.cursor(), [OutboxMessage(topic, b"k", f"m{i}".encode()) for i in range(10)]
        )
    txn = f"{settings.namespace}.eo.1"
    first = relay(settings, topic, txn)
    with db.connect(settings) as conn:
        # The first batch's Kafka transaction commits; the process dies before its delete.
        with conn.transaction():
            batch = conn.execute(
                "SELECT id, topic, key, value, header_names, header_values FROM da_outbox "
                "WHERE owner = 'eo-test' ORDER BY id LIMIT 4"
            ).fetchall()
            first._send_transaction(batch, [int(str(r[0])) for r in batch], first.marker)  # type: ignore[arg-type]
        # A transaction begun and never committed (the process died inside it).
        first.producer.begin_transaction()
        first.producer.produce(topic, b"never", b"k")
        first.producer.flush(10)
    assert rows(settings) == 10
    with db.connect(settings) as conn:
        assert relay(settings, topic, txn).relay(conn) == 6
    assert rows(settings) == 0
    got = [m.value() for m in read_topic(settings, topic, expect=10)]
    assert got == [f"m{i}".encode() for i in range(10)]


def test_ids_travel_as_ranges() -> None:
    ids = [1, 2, 3, 7, 9, 10, 11, 40]
    assert encode_ids(ids) == "1-3,7,9-11,40"
    assert decode_ids(encode_ids(ids)) == ids
    assert decode_ids("") == []
