"""The bare-client ceilings: each step of the pipeline written straight on confluent-kafka,
msgspec, fastavro and psycopg, with the same guarantees as the stage it stands beside.

- ``passthrough``: consume, produce the same bytes, offsets in the same Kafka transaction: the
  floor of any Kafka-to-Kafka stage.
- ``gep``: msgspec decode of the raw proctoring row, the checks GEP makes of it, fastavro encode
  (parsed schema reused) of the canonical record, in Kafka transactions.
- ``demux``: fastavro decode of the canonical record, the fulfillment DE built from it, fastavro
  encode, in Kafka transactions.
- ``dep`` and ``dep-tables``: the DEP's step, into PostgreSQL (``bench.bare_dep``).
- ``learning-<DEP>``: a learning DEP's DEs stored as they are (``bench.bare_learning``).

Each runs in a fresh spawned interpreter, as ``bench.stage`` runs the project's stages, and is
timed the same way: from the first message handled to the batch that reached ``n`` committed.
"""

from __future__ import annotations

import io
import multiprocessing
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

import msgspec
from fastavro import schemaless_reader, schemaless_writer

from bench import bare_dep, bare_learning
from bench.bare_loop import Timer, body, consume_loop, schema
from bench.report import Figure
from bench.stage import LEARNING_DEPS
from common.events.canonical import CANONICAL
from common.events.fulfillment import FULFILLMENT_DE
from common.kafka import make_consumer, make_producer
from common.runloop import Message
from common.settings import Settings
from common.topics import Topics
from common.transactional import next_offsets

KINDS = (
    "passthrough",
    "gep",
    "demux",
    *bare_dep.KINDS,
    *(f"learning-{dep}" for dep in LEARNING_DEPS),
)
_TYPE_RE = re.compile(r"^Event::[A-Za-z][A-Za-z0-9]*$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ROW = msgspec.json.Decoder(dict[str, str | int | float | bool | None])
_KNOWN = frozenset(("id", "type", "fulfillment_id", "created_at", "created_by_id"))
Out = tuple[str, bytes | None, bytes, Any]


def _checked(row: dict[str, Any], name: str) -> str:
    raw = row.get(name)
    if raw is None or raw == "" or isinstance(raw, bool | float):
        raise ValueError(name)
    text = str(raw).strip()
    if "\x00" in text or not text or len(text) > 200:
        raise ValueError(name)
    return text


def _gep_step(settings: Settings, topics: Topics) -> Callable[[Message], list[Out]]:
    parsed, header = schema(settings, CANONICAL)
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
        schemaless_writer(buf, parsed, record)
        return [(out_topic, fid.encode(), buf.getvalue(), None)]

    return step


def _demux_step(settings: Settings, topics: Topics) -> Callable[[Message], list[Out]]:
    canonical, _ = schema(settings, CANONICAL)
    de, de_header = schema(settings, FULFILLMENT_DE)
    out_topic = topics.sink_bucket("demux", "fulfillment")

    def step(m: Message) -> list[Out]:
        r = schemaless_reader(body(m.value() or b""), canonical, None)
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


def _transform(settings: Settings, kind: str, source: Topics, out: Topics, n: int) -> Figure:
    steps = {"passthrough": _passthrough_step, "gep": _gep_step, "demux": _demux_step}
    step = steps[kind](settings, out)
    inputs = {"passthrough": source.ingest, "gep": source.ingest, "demux": source.canonical}
    group = settings.group_id(f"bare-{kind}")
    producer: Any = make_producer(settings, transactional_id=group)
    producer.init_transactions(settings.io_timeout_s)
    consumer: Any = make_consumer(settings, group)
    consumer.subscribe([inputs[kind]])
    timer = Timer()

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
        consume_loop(consumer, settings.batch_size, n, 30.0, timer, commit)
    finally:
        consumer.close()
    return timer.figure(f"bare {kind}", n)


def measure(settings: Settings, kind: str, source: Settings, n: int) -> Figure:
    """Run the bare ``kind`` on ``source``'s topics, writing into ``settings``' namespace."""
    if kind in bare_dep.KINDS:
        return bare_dep.measure(settings, Topics(source.namespace), n, kind)
    if kind.startswith("learning-"):
        return bare_learning.measure(settings, Topics(source.namespace), n, kind[9:])
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
