"""Reading a stage's dead-letter topic from its beginning to its current end: what ``da dlq``
lists, shows and replays, and what ``da status`` and the web console count by reason."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from common import deadletter as dl
from common.kafka import make_consumer
from common.settings import Settings
from common.topics import Topics


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def get(self, name: str) -> str | None:
        return dl.header(self.headers, name)

    def failed_at(self) -> datetime | None:
        raw = self.get(dl.H_FAILED_AT)
        try:
            return datetime.fromisoformat(raw) if raw else None
        except ValueError:
            return None


def read_letters(settings: Settings, stage: str, limit: int | None = None) -> Iterator[Letter]:
    """Every dead letter of a stage from the beginning to the current end of its topic."""
    topic = Topics(settings.namespace).dead_letter(stage)
    consumer = make_consumer(settings, f"da.dlq-reader.{uuid.uuid4().hex}")
    try:
        meta = consumer.list_topics(topic, timeout=settings.io_timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return
        ends: dict[int, int] = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=settings.io_timeout_s
            )
            if high > low:
                ends[p] = high
        if not ends:
            return
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        seen = 0
        deadline = time.monotonic() + settings.io_timeout_s * 4
        while ends and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                if m.error() is not None:
                    continue
                yield Letter(
                    m.partition() or 0,
                    m.offset() or 0,
                    _bytes(m.key()),
                    _bytes(m.value()),
                    _headers(m.headers()),
                )
                seen += 1
                if limit is not None and seen >= limit:
                    return
            # The position, not the last offset seen, tells when a partition is done: a topic
            # written in transactions ends with a commit marker no consumer ever receives.
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                if tp.offset >= ends[tp.partition]:
                    ends.pop(tp.partition)
    finally:
        consumer.close()


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    items = raw.items() if isinstance(raw, dict) else (raw or [])
    return [(str(k), _bytes(v) or b"") for k, v in items]
