"""What the bare-client ceilings (``bench.bare``, ``bench.bare_dep``, ``bench.bare_learning``)
share: how each is timed, its consume loop, its offsets in PostgreSQL, and the schemas it reads
and writes with."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition
from fastavro import parse_schema

from bench import proc
from bench.report import Figure
from cli.schemas import codec_for
from common import db
from common.codec import HEADER_LEN, REGISTRY_HEADER_LEN
from common.kafka import make_consumer
from common.runloop import Message
from common.settings import Settings
from common.transactional import next_offsets


def schema(settings: Settings, name: str) -> tuple[Any, bytes]:
    """The parsed newest schema of ``name`` and the framing the stages write it with."""
    codec = codec_for(settings)
    try:
        return parse_schema(json.loads(codec.latest(name).text)), codec.header(name)
    finally:
        codec.close()


def framed(value: bytes) -> tuple[bytes, io.BytesIO]:
    """A stage's record in either framing, registry (00 + id) or single-object (C3 01 +
    fingerprint): its header (which names the schema) and its Avro body."""
    cut = REGISTRY_HEADER_LEN if value[:1] == b"\x00" else HEADER_LEN
    return value[:cut], io.BytesIO(value[cut:])


def body(value: bytes) -> io.BytesIO:
    return framed(value)[1]


class Timer:
    def __init__(self) -> None:
        self.started = self.ended = self.cpu_started = self.cpu_ended = 0.0
        self.handled = 0

    def first(self) -> None:
        if not self.started:
            self.started = time.monotonic()
            self.cpu_started = time.process_time()

    def committed(self, count: int) -> None:
        self.handled += count
        self.ended = time.monotonic()
        self.cpu_ended = time.process_time()

    def figure(self, name: str, n: int) -> Figure:
        note = "" if self.handled >= n else f"stopped idle after {self.handled:,} of {n:,}"
        return Figure(
            name,
            self.handled,
            self.ended - self.started,
            cpu_s=self.cpu_ended - self.cpu_started,
            peak_rss_kib=proc.peak_rss_kib(),
            note=note,
        )


def consume_loop(
    consumer: Any,
    batch_size: int,
    n: int,
    idle_stop_s: float,
    timer: Timer,
    commit: Callable[[list[Message]], None],
) -> None:
    idle_since = time.monotonic()
    while timer.handled < n:
        batch: list[Message] = [m for m in consumer.consume(batch_size, 0.5) if m.error() is None]
        if not batch:
            if time.monotonic() - idle_since > idle_stop_s:
                return
            continue
        timer.first()
        commit(batch)
        timer.committed(len(batch))
        idle_since = time.monotonic()


def _resume_from_db(conn: Any, group: str) -> Callable[[Any, list[TopicPartition]], None]:
    """An ``on_assign`` that starts each partition at the offset stored in ``da_offsets``."""

    def on_assign(consumer: Any, partitions: list[TopicPartition]) -> None:
        rows = conn.execute(
            "SELECT topic, partition, next_offset FROM da_offsets WHERE consumer_group = %s",
            (group,),
        ).fetchall()
        conn.commit()
        stored = {(str(t), int(str(p))): int(str(o)) for t, p, o in rows}
        for tp in partitions:
            tp.offset = stored.get((tp.topic, tp.partition), -2)  # -2: the beginning
        consumer.incremental_assign(partitions)

    return on_assign


def _store_offsets(cur: Any, group: str, batch: list[Message]) -> None:
    """Every partition's next offset in ``da_offsets``, in one statement."""
    offsets = next_offsets(batch)
    cur.execute(
        "INSERT INTO da_offsets (consumer_group, topic, partition, next_offset)"
        " SELECT %s, t, p, o FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS x(t, p, o)"
        " ON CONFLICT (consumer_group, topic, partition)"
        " DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
        (
            group,
            [tp.topic for tp in offsets],
            [tp.partition for tp in offsets],
            [tp.offset for tp in offsets],
        ),
    )


def consume_into_db(
    settings: Settings,
    kind: str,
    topics: list[str],
    setup: list[str],
    write: Callable[[Any, list[Message]], None],
    n: int,
    name: str,
) -> Figure:
    """A bare program with its offsets in PostgreSQL (group ``bare-<kind>``): ``setup`` run and
    committed once (it creates the temporary table ``incoming``); then each batch of ``topics``
    is ``write`` (which fills ``incoming``), then its offsets, in one database transaction,
    until ``n`` are committed. The figure is named ``name``."""
    group = settings.group_id(f"bare-{kind}")
    conn = db.connect(settings)
    cur = conn.cursor()
    for statement in setup:
        cur.execute(statement)
    conn.commit()
    consumer: Any = make_consumer(settings, group)
    consumer.subscribe(topics, on_assign=_resume_from_db(conn, group))
    timer = Timer()

    def commit(batch: list[Message]) -> None:
        write(cur, batch)
        _store_offsets(cur, group, batch)
        cur.execute("TRUNCATE incoming")
        conn.commit()

    try:
        consume_loop(consumer, settings.batch_size, n, 30.0, timer, commit)
    finally:
        consumer.close()
        conn.close()
    return timer.figure(name, n)
