"""The benchmark's input: sample proctoring events, produced to ingest as ``da emit`` does."""

from __future__ import annotations

import json
import math
import time
from dataclasses import astuple
from typing import Any

import msgspec
from confluent_kafka import Producer

from bench import proc
from bench.report import Figure
from cli.emit_input import BadRow, Message, Row, read_jsonl, to_message
from cli.sample import learning as sample_learning
from cli.sample.fulfillments import COLUMNS, generate
from common.kafka import make_producer
from common.settings import Settings
from common.topics import Topics

# The generator gives ~7.7 events per fulfillment; ask for a little more than needed.
_EVENTS_PER_FULFILLMENT = 7.0


def sample_messages(n: int, seed: int = 42) -> tuple[list[Message], int]:
    """The first ``n`` events (in time order) of a sample export, as ``da emit`` sends them,
    and the number of fulfillments they belong to."""
    count = max(1, math.ceil(n / _EVENTS_PER_FULFILLMENT))
    rows = generate(seed, count)
    while len(rows) < n:
        count = math.ceil(count * 1.2)
        rows = generate(seed, count)
    messages = []
    # Line numbers as in the CSV file `da sample fulfillments` writes (the header is line 1).
    for line, r in enumerate(rows[:n], start=2):
        message = to_message(Row(line, dict(zip(COLUMNS, astuple(r), strict=True))))
        if isinstance(message, BadRow):
            raise RuntimeError(f"the sample generator wrote a row emit rejects: {message}")
        messages.append(message)
    return messages, len({m.key for m in messages})


def warm_producer(settings: Settings) -> Producer:
    """A producer as the stages' clients get them, ready to send. librdkafka's idempotent
    producer holds what it is given until it has a producer id, which it acquires about 500 ms
    after it is made (it asks before a broker connection is up, then waits out a retry timer):
    a measurement that starts after that times the pipeline, not this producer's start-up."""
    producer = make_producer(settings)
    deadline = time.monotonic() + 1.0
    while (left := deadline - time.monotonic()) > 0:
        producer.poll(left)  # returns early when it serves a callback (a log line, an error)
    return producer


def produce(
    settings: Settings, messages: list[Message], name: str, producer: Producer | None = None
) -> Figure:
    """Produce every message to the ingest topic as fast as the producer takes them; the figure
    runs from the first ``produce()`` until the broker acknowledged the last one."""
    producer = warm_producer(settings) if producer is None else producer
    topic = Topics(settings.namespace).ingest
    delivered = failed = 0

    def report(err: Any, _msg: Any) -> None:
        nonlocal delivered, failed
        if err is None:
            delivered += 1
        else:
            failed += 1

    usage_started = proc.usage(settings)
    started = time.monotonic()
    cpu_started = time.process_time()
    for m in messages:
        while True:
            try:
                producer.produce(
                    topic, value=m.value, key=m.key, headers=m.headers, on_delivery=report
                )
                break
            except BufferError:
                producer.poll(0.1)  # the local queue is full: let librdkafka deliver some
        producer.poll(0)
    remaining = producer.flush(settings.io_timeout_s)
    seconds = time.monotonic() - started
    cpu_s = time.process_time() - cpu_started
    services = proc.share(usage_started, proc.usage(settings), seconds, cpu_s)
    if failed or remaining:
        raise RuntimeError(f"{failed} deliveries failed and {remaining} were not acknowledged")
    return Figure(name, delivered, seconds, cpu_s=cpu_s, services=services)


def learning_messages(students: int, seed: int = 7) -> list[Message]:
    """A class's learning sessions (``da sample learning``), as ``da emit`` sends them."""
    lines = (json.dumps(r, separators=(",", ":")) for r in sample_learning.generate(seed, students))
    messages = []
    for m in read_jsonl(lines):
        if isinstance(m, BadRow):
            raise RuntimeError(f"the learning sample has a line emit rejects: {m}")
        messages.append(m)
    return messages


def produce_at(
    settings: Settings, messages: list[Message], rate: float, producer: Producer
) -> dict[str, float]:
    """Produce at ``rate`` messages per second (in 10 ms steps) with ``producer`` (see
    ``warm_producer``); the wall-clock time (``time.time()``, the clock PostgreSQL's ``now()``
    reads) each event id was produced."""
    topic = Topics(settings.namespace).ingest
    sent: dict[str, float] = {}
    started = time.monotonic()
    for i, m in enumerate(messages):
        due = started + i / rate
        delay = due - time.monotonic()
        if delay > 0.01:
            producer.poll(delay)
        sent[str(_ids.decode(m.value).id)] = time.time()
        producer.produce(topic, value=m.value, key=m.key, headers=m.headers)
        producer.poll(0)
    if producer.flush(settings.io_timeout_s):
        raise RuntimeError("not every message was acknowledged")
    return sent


class _Id(msgspec.Struct):
    id: str | int


_ids = msgspec.json.Decoder(_Id)
