"""The outbox relay on real Kafka and PostgreSQL: a row leaves the outbox only once the broker
has its message. A delivery that fails (here: to a topic that does not exist, as a message that
times out while the broker is away fails) keeps the row for a later relay, instead of passing
for sent because nothing is left in the producer's queue (``common.deadletter.deliver``)."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from common import db
from common.errors import TransientError
from common.kafka import ensure_topics, producer_config
from common.outbox import Outbox, OutboxMessage, OutboxRelay
from common.settings import Settings
from tests.kafka_read import read_topic


def _rows(settings: Settings) -> int:
    with db.connect(settings) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM da_outbox WHERE owner = 'al-test'"
        ).fetchone() or (0,)
    return int(str(n))


def test_a_failed_delivery_keeps_the_rows_until_a_relay_delivers_them(settings: Settings) -> None:
    db.migrate(settings, [])
    topic = f"{settings.namespace}.al"  # not created yet: every delivery to it fails
    with db.connect(settings) as conn, conn.transaction():
        Outbox("al-test").add(
            conn.cursor(), [OutboxMessage(topic, b"k", f"m{i}".encode()) for i in range(5)]
        )
    # The relay's producer, as the stages build it, with a short delivery deadline.
    producer = Producer({**producer_config(settings), "message.timeout.ms": 3000})
    relay = OutboxRelay("al-test", producer, timeout_s=20)
    with db.connect(settings) as conn, pytest.raises(TransientError):
        relay.relay(conn)
    assert _rows(settings) == 5  # nothing was lost with the failed delivery
    ensure_topics(settings, [topic], partitions=1)
    with db.connect(settings) as conn:
        assert relay.relay(conn) == 5
    assert _rows(settings) == 0
    got = [m.value() for m in read_topic(settings, topic, expect=5)]
    assert got == [f"m{i}".encode() for i in range(5)]
