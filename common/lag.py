"""Where each consuming stage stands, per partition: the end of its input, its committed offset in
Kafka and, for stages that keep their offsets in PostgreSQL, the stored one.

Read from outside the stages (``da status``, tests): a consumer that never subscribes asks for the
group's committed offsets without joining the group, so reading never disturbs a running stage.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from confluent_kafka import TopicPartition

from common.kafka import make_consumer
from common.settings import Settings


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    end: int  # the high watermark: one past the last record (or commit marker)
    committed: int | None  # the group's committed offset in Kafka; None: none yet
    stored: int | None = None  # da_offsets' next offset (store stages); None: no row

    @property
    def position(self) -> int | None:
        """Where the stage resumes: its stored offset when it keeps one, else Kafka's."""
        return self.stored if self.stored is not None else self.committed

    @property
    def lag(self) -> int:
        start = self.position
        return self.end if start is None else max(0, self.end - start)


def partitions(settings: Settings, topics: list[str]) -> list[TopicPartition]:
    consumer = make_consumer(settings, f"da.lag-reader.{uuid.uuid4().hex}")
    try:
        found = []
        meta = consumer.list_topics(timeout=settings.io_timeout_s).topics
        for topic in topics:
            t = meta.get(topic)
            if t is None or t.error is not None:
                continue
            found += [TopicPartition(topic, p) for p in sorted(t.partitions)]
        return found
    finally:
        consumer.close()


def kafka_lag(settings: Settings, group: str, topics: list[str]) -> list[PartitionLag]:
    """End and committed offset of every partition of ``topics`` for ``group``."""
    parts = partitions(settings, topics)
    if not parts:
        return []
    consumer = make_consumer(settings, group)
    try:
        committed = consumer.committed(parts, timeout=settings.io_timeout_s)
        out = []
        for tp in committed:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=settings.io_timeout_s
            )
            out.append(
                PartitionLag(tp.topic, tp.partition, high, tp.offset if tp.offset >= 0 else None)
            )
        return out
    finally:
        consumer.close()


def stored_offsets(
    conn: psycopg.Connection[tuple[object, ...]], group: str
) -> dict[tuple[str, int], int]:
    rows = conn.execute(
        "SELECT topic, partition, next_offset FROM da_offsets WHERE consumer_group = %s",
        (group,),
    ).fetchall()
    return {(str(t), int(str(p))): int(str(o)) for t, p, o in rows}


def with_stored(lags: list[PartitionLag], stored: dict[tuple[str, int], int]) -> list[PartitionLag]:
    return [
        PartitionLag(x.topic, x.partition, x.end, x.committed, stored.get((x.topic, x.partition)))
        for x in lags
    ]
