"""The bare-client ceilings: each step of the pipeline written straight on confluent-kafka,
msgspec, fastavro and psycopg, with the same guarantees as the stage it stands beside.

- ``passthrough``: consume, produce the same bytes, offsets in the same Kafka transaction: the
  floor of any Kafka-to-Kafka stage.
- ``gep``: msgspec decode of the raw proctoring row, the checks GEP makes of it, fastavro encode
  (parsed schema reused) of the canonical record, in Kafka transactions.
- ``demux``: fastavro decode of the canonical record, the fulfillment DE built from it, fastavro
  encode, in Kafka transactions.
- ``dep``: fastavro decode of the DE, COPY into a temporary table, one merge into ``events``,
  one statement for every partition's offset in ``da_offsets``, one database transaction per
  batch (resuming from the stored offsets).

Each runs in a fresh spawned interpreter, as ``bench.stage`` runs the project's stages, and is
timed the same way: from the first message handled to the batch that reached ``n`` committed.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

import msgspec
from confluent_kafka import Consumer, TopicPartition
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from bench import proc
from bench.report import Figure
from cli.schemas import codec_for
from common import db
from common.codec import HEADER_LEN, REGISTRY_HEADER_LEN
from common.events.canonical import CANONICAL
from common.events.fulfillment import FULFILLMENT_DE
from common.kafka import make_consumer, make_producer
from common.runloop import Message
from common.settings import Settings
from common.topics import Topics
from common.transactional import next_offsets

KINDS = ("passthrough", "gep", "demux", "dep")
_TYPE_RE = re.compile(r"^Event::[A-Za-z][A-Za-z0-9]*$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ROW = msgspec.json.Decoder(dict[str, str | int | float | bool | None])
_KNOWN = frozenset(("id", "type", "fulfillment_id", "created_at", "created_by_id"))
Out = tuple[str, bytes | None, bytes, Any]


def _schema(settings: Settings, name: str) -> tuple[Any, bytes]:
    """The parsed newest schema of ``name`` and the framing the stages write it with."""
    codec = codec_for(settings)
    try:
        return parse_schema(json.loads(codec.latest(name).text)), codec.header(name)
    finally:
        codec.close()


def _body(value: bytes) -> io.BytesIO:
    # The stages' records in either framing: registry (00 + id) or single-object (C3 01 + crc).
    return io.BytesIO(value[REGISTRY_HEADER_LEN if value[:1] == b"\x00" else HEADER_LEN :])


def _checked(row: dict[str, Any], name: str) -> str:
    raw = row.get(name)
    if raw is None or raw == "" or isinstance(raw, bool | float):
        raise ValueError(name)
    text = str(raw).strip()
    if "\x00" in text or not text or len(text) > 200:
        raise ValueError(name)
    return text


def _gep_step(settings: Settings, topics: Topics) -> Callable[[Message], list[Out]]:
    schema, header = _schema(settings, CANONICAL)
    out_topic = topics.canonical

    def step(m: Message) -> list[Out]:
        row = _ROW.decode(m.value() or b"")
        fid = _checked(row, "fulfillment_id")
        etype = _checked(row, "type")
        if not _TYPE_RE.match(etype):
            raise ValueError("type")
        for k, v in row.items():
            if "\x00" in k or (isinstance(v, str) and "\x00" in v):
                raise ValueError(k)
        ts = datetime.fromisoformat(_checked(row, "created_at"))
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        actor = row.get("created_by_id")
        record = {
            "event_id": _checked(row, "id"),
            "source": "proctoring.csv",
            "event_type": etype,
            "entity_type": "fulfillment",
            "entity_id": fid,
            "occurred_at": ts,
            "received_at": datetime.now(UTC),
            "actor_id": None if actor in (None, "") else str(actor).strip(),
            "attributes": {
                k: v if isinstance(v, str) else msgspec.json.encode(v).decode()
                for k, v in row.items()
                if k not in _KNOWN and v is not None and v != ""
            },
            "usage": None,
            "system": None,
            "impacts": [],
        }
        buf = io.BytesIO()
        buf.write(header)
        schemaless_writer(buf, schema, record)
        return [(out_topic, fid.encode(), buf.getvalue(), None)]

    return step


def _demux_step(settings: Settings, topics: Topics) -> Callable[[Message], list[Out]]:
    canonical, _ = _schema(settings, CANONICAL)
    de, de_header = _schema(settings, FULFILLMENT_DE)
    out_topic = topics.sink_bucket("demux", "fulfillment")

    def step(m: Message) -> list[Out]:
        r = schemaless_reader(_body(m.value() or b""), canonical, None)
        assert isinstance(r, dict)
        act = _CAMEL.sub("_", r["event_type"].rsplit("::", 1)[-1]).lower()
        name = f"fulfillment.{act}"
        record = {
            "name": name,
            "event_id": r["event_id"],
            "fulfillment_id": r["entity_id"],
            "event_type": r["event_type"],
            "occurred_at": r["occurred_at"],
            "actor_id": r["actor_id"],
            "attributes": r["attributes"],
            "lineage": {"root_event_id": r["event_id"], "stages": ["gep", "demux"], "hops": 1},
        }
        buf = io.BytesIO()
        buf.write(de_header)
        schemaless_writer(buf, de, record)
        key = r["entity_id"].encode()
        return [(out_topic, key, buf.getvalue(), [("da-de-name", name.encode())])]

    return step


def _passthrough_step(_settings: Settings, topics: Topics) -> Callable[[Message], list[Out]]:
    out_topic = topics.ingest

    def step(m: Message) -> list[Out]:
        return [(out_topic, m.key(), m.value() or b"", m.headers())]

    return step


class _Timer:
    def __init__(self) -> None:
        self.started = self.ended = self.cpu_started = self.cpu_ended = 0.0
        self.handled = 0

    def first(self) -> None:
        if not self.started:
            self.started = time.monotonic()
            self.cpu_started = proc.cpu_s(os.getpid())

    def committed(self, count: int) -> None:
        self.handled += count
        self.ended = time.monotonic()
        self.cpu_ended = proc.cpu_s(os.getpid())

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


def _consume_loop(
    consumer: Any,
    batch_size: int,
    n: int,
    idle_stop_s: float,
    timer: _Timer,
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


def _transform(settings: Settings, kind: str, source: Topics, out: Topics, n: int) -> Figure:
    steps = {"passthrough": _passthrough_step, "gep": _gep_step, "demux": _demux_step}
    step = steps[kind](settings, out)
    inputs = {"passthrough": source.ingest, "gep": source.ingest, "demux": source.canonical}
    group = settings.group_id(f"bare-{kind}")
    producer: Any = make_producer(settings, transactional_id=group)
    producer.init_transactions(settings.io_timeout_s)
    consumer: Any = make_consumer(settings, group)
    consumer.subscribe([inputs[kind]])
    timer = _Timer()

    def commit(batch: list[Message]) -> None:
        producer.begin_transaction()
        for m in batch:
            for topic, key, value, headers in step(m):
                while True:
                    try:
                        producer.produce(topic, value, key, headers=headers)
                        break
                    except BufferError:
                        producer.poll(0.05)
        producer.flush(settings.io_timeout_s)
        producer.send_offsets_to_transaction(
            next_offsets(batch), consumer.consumer_group_metadata(), settings.io_timeout_s
        )
        producer.commit_transaction(settings.io_timeout_s)

    try:
        _consume_loop(consumer, settings.batch_size, n, 30.0, timer, commit)
    finally:
        consumer.close()
    return timer.figure(f"bare {kind}", n)


def _dep(settings: Settings, source: Topics, n: int) -> Figure:
    schema, _ = _schema(settings, FULFILLMENT_DE)
    group = settings.group_id("bare-dep")
    topic = source.sink_bucket("demux", "fulfillment")
    conn = db.connect(settings)
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE incoming (LIKE events INCLUDING DEFAULTS)")
    conn.commit()

    def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        rows = conn.execute(
            "SELECT partition, next_offset FROM da_offsets WHERE consumer_group = %s"
            " AND topic = %s",
            (group, topic),
        ).fetchall()
        conn.commit()
        stored = {int(str(p)): int(str(o)) for p, o in rows}
        for tp in partitions:
            tp.offset = stored.get(tp.partition, -2)  # -2: the beginning
        consumer.incremental_assign(partitions)

    consumer: Any = make_consumer(settings, group)
    consumer.subscribe([topic], on_assign=on_assign)
    timer = _Timer()
    payload = msgspec.json.Encoder()

    def commit(batch: list[Message]) -> None:
        seen: set[str] = set()
        with cur.copy(
            "COPY incoming (event_id, fulfillment_id, event_type, created_at, created_by_id,"
            " payload) FROM STDIN"
        ) as copy:
            for m in batch:
                r = schemaless_reader(_body(m.value() or b""), schema, None)
                assert isinstance(r, dict)
                if r["event_id"] in seen:
                    continue
                seen.add(r["event_id"])
                copy.write_row(
                    (
                        r["event_id"],
                        r["fulfillment_id"],
                        r["event_type"],
                        r["occurred_at"],
                        r["actor_id"],
                        payload.encode(r["attributes"]).decode(),
                    )
                )
        cur.execute(
            "INSERT INTO events (event_id, fulfillment_id, event_type, created_at,"
            " created_by_id, payload) SELECT event_id, fulfillment_id, event_type, created_at,"
            " created_by_id, payload FROM incoming ON CONFLICT (event_id) DO NOTHING"
        )
        offsets = next_offsets(batch)
        cur.execute(
            "INSERT INTO da_offsets (consumer_group, topic, partition, next_offset)"
            " SELECT %s, %s, p, o FROM unnest(%s::int[], %s::bigint[]) AS t(p, o)"
            " ON CONFLICT (consumer_group, topic, partition)"
            " DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
            (group, topic, [tp.partition for tp in offsets], [tp.offset for tp in offsets]),
        )
        cur.execute("TRUNCATE incoming")
        conn.commit()

    try:
        _consume_loop(consumer, settings.batch_size, n, 30.0, timer, commit)
    finally:
        consumer.close()
        conn.close()
    return timer.figure("bare dep", n)


def measure(settings: Settings, kind: str, source: Settings, n: int) -> Figure:
    """Run the bare ``kind`` on ``source``'s topics, writing into ``settings``' namespace."""
    if kind == "dep":
        return _dep(settings, Topics(source.namespace), n)
    return _transform(settings, kind, Topics(source.namespace), Topics(settings.namespace), n)


def measure_isolated(settings: Settings, kind: str, source: Settings, n: int) -> Figure:
    """``measure`` in a fresh spawned interpreter, like ``bench.stage.measure_isolated``."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, settings, kind, source, n).result()


def needed_topics(settings: Settings) -> Sequence[str]:
    """The topics the bare programs write in their own namespace."""
    t = Topics(settings.namespace)
    return [t.ingest, t.canonical, t.sink_bucket("demux", "fulfillment")]
