"""The real services the other integration tests stand on: Kafka (plain and transactional
produce, consume) and PostgreSQL answer, with the client settings the pipeline uses."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, Message

from common.kafka import ensure_topics, make_consumer, make_producer
from common.settings import Settings
from common.topics import Topics

pytestmark = pytest.mark.integration


def _consume(consumer: Consumer, expected: int, timeout_s: float = 30.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(msg)
    return got


def _produce_and_read(settings: Settings, topic: str, transactional: bool) -> list[Message]:
    ensure_topics(settings, [topic], partitions=1)
    producer = make_producer(
        settings, transactional_id=f"test-{uuid.uuid4().hex}" if transactional else None
    )
    if transactional:
        producer.init_transactions(settings.io_timeout_s)
        producer.begin_transaction()
    producer.produce(topic, key=b"k1", value=b"v1")
    producer.produce(topic, key=b"k2", value=b"v2")
    if transactional:
        producer.commit_transaction(settings.io_timeout_s)
    assert producer.flush(settings.io_timeout_s) == 0
    consumer = make_consumer(settings, settings.group_id(f"test-{uuid.uuid4().hex[:8]}"))
    try:
        consumer.subscribe([topic])
        return _consume(consumer, 2)
    finally:
        consumer.close()


def test_kafka_round_trip(settings: Settings) -> None:
    got = _produce_and_read(settings, Topics(settings.namespace).ingest, transactional=False)
    assert [(m.key(), m.value()) for m in got] == [(b"k1", b"v1"), (b"k2", b"v2")]


def test_kafka_transactions_on_a_single_broker(settings: Settings) -> None:
    # The consumer reads committed data only, so seeing the messages proves the commit landed.
    got = _produce_and_read(settings, Topics(settings.namespace).canonical, transactional=True)
    assert [(m.key(), m.value()) for m in got] == [(b"k1", b"v1"), (b"k2", b"v2")]


def test_postgres_answers_and_schema_is_ready(settings: Settings) -> None:
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        row = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
            (settings.database_schema,),
        ).fetchone()
        assert row == (1,)


def test_settings_env_matches_settings(settings: Settings, settings_env: dict[str, str]) -> None:
    assert Settings.load(settings_env) == settings
