"""Wiring: builds a stage's clients and processor from settings and hands them to the run loop.

The CLI calls these; tests call them too, with ``max_messages`` or ``idle_stop_s`` to stop.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition

from common import db, parking
from common.deadletter import DeadLetterLimit
from common.guard import Condemning, Guarded
from common.health import HealthServer
from common.kafka import check_kafka, make_consumer, make_producer
from common.metrics import MeteredProducer
from common.names import DEP_PREFIX
from common.observe import StageObserver
from common.outbox import OutboxRelay, RelayMarker
from common.runloop import Producer, RunStats, Stopper, run
from common.settings import Settings
from common.store import StoreHandler, StoreProcessor
from common.topics import Topics
from common.transactional import Handler, TransactionalProcessor

log = logging.getLogger(__name__)


def transactional_id(settings: Settings, stage: str) -> str:
    # Stable per instance: a restarted instance fences its own zombie and aborts what it left
    # open. Plain processes of one stage on one host need distinct DA_INSTANCE_ID values
    # (containers each have their own host name).
    instance = settings.instance_id or socket.gethostname()
    return f"{settings.group_id(stage)}.{instance}"


def run_transform(
    settings: Settings,
    stage: str,
    handler: Handler,
    inputs: list[str],
    stop: Stopper,
    **limits: Any,
) -> RunStats:
    check_kafka(settings)
    topics = Topics(settings.namespace)
    observer = _observer(settings, stage, None)
    dead_letters = topics.dead_letter(stage)
    producer = make_producer(settings, transactional_id=transactional_id(settings, stage))
    processor = TransactionalProcessor(
        stage,
        MeteredProducer(producer, dead_letters, observer),
        handler,
        dead_letters,
        timeout_s=settings.io_timeout_s,
        limit=DeadLetterLimit(settings.dead_letter_max_ratio),
        stop=stop,
        max_message_bytes=settings.max_message_bytes,
    )
    stats = _consume(
        settings, stage, settings.group_id(stage), processor, inputs, stop, observer, limits
    )
    log.info(
        "%s: stopped after %d events (%d produced, %d dead-lettered)",
        stage,
        stats.messages,
        processor.produced,
        processor.dead_lettered,
    )
    return stats


def run_store(
    settings: Settings,
    stage: str,
    handler: StoreHandler[Any],
    inputs: list[str],
    stop: Stopper,
    *,
    outbox_owner: str | None = None,
    outbox_exactly_once: bool = False,
    outbox_from_batches: bool = True,
    **limits: Any,
) -> RunStats:
    """``outbox_owner``: the handler writes to the outbox under this name; relay it (exactly
    once: ``outbox_exactly_once``, see ``common.outbox``) after every batch, or only after its
    timers' ticks when ``outbox_from_batches`` is False. Everything it keeps (tables, offsets,
    outbox, parked and in-flight rows) is in the DEP's database."""
    settings = settings.for_dep(stage.removeprefix(DEP_PREFIX))
    check_kafka(settings)
    db.check_database(settings)
    topics = Topics(settings.namespace)
    group = settings.group_id(stage)
    observer = _observer(settings, stage, outbox_owner)
    dead_letters = topics.dead_letter(stage)
    producer = MeteredProducer(make_producer(settings), dead_letters, observer)
    limit = DeadLetterLimit(settings.dead_letter_max_ratio)
    relay = (
        None
        if outbox_owner is None
        else _relay(
            settings, stage, outbox_owner, producer, limit, exactly_once=outbox_exactly_once
        )
    )
    processor: StoreProcessor[Any] = StoreProcessor(
        stage,
        group,
        handler,
        lambda: db.connect(settings),
        producer,
        dead_letters,
        timeout_s=settings.io_timeout_s,
        limit=limit,
        stop=stop,
        after_commit=None if relay is None else relay.relay,
        max_message_bytes=settings.max_message_bytes,
        on_commit=observer.committed,
        relay_after_batches=outbox_from_batches,
    )
    stats = _consume(settings, stage, group, processor, inputs, stop, observer, limits)
    log.info(
        "%s: stopped after %d events (%d dead-lettered)",
        stage,
        stats.messages,
        processor.dead_lettered,
    )
    return stats


def _relay(
    settings: Settings,
    stage: str,
    owner: str,
    producer: Producer,
    limit: DeadLetterLimit,
    *,
    exactly_once: bool,
) -> OutboxRelay:
    if not exactly_once:
        return OutboxRelay(owner, producer, timeout_s=settings.io_timeout_s, limit=limit)
    # Its own transactional producer (the stage's dead letters are not part of its
    # transactions) and a marker group beside the stage's.
    marker = RelayMarker(
        make_consumer(settings, f"{settings.group_id(stage)}.outbox"),
        Topics(settings.namespace).dead_letter(stage),
    )
    return OutboxRelay(
        owner,
        make_producer(settings, transactional_id=transactional_id(settings, stage) + ".outbox"),
        timeout_s=settings.io_timeout_s,
        marker=marker,
        limit=limit,
    )


def _observer(settings: Settings, stage: str, parking_owner: str | None) -> StageObserver:
    return StageObserver(
        stage,
        loop_ttl_s=settings.loop_ttl_s,
        unassigned_max_s=settings.unassigned_max_s,
        unhealthy_exit_s=settings.unhealthy_exit_s,
        parked=None if parking_owner is None else _ParkedCount(settings, parking_owner),
    )


def _consume(
    settings: Settings,
    stage: str,
    group: str,
    processor: Condemning,
    inputs: list[str],
    stop: Stopper,
    observer: StageObserver,
    limits: dict[str, Any],
) -> RunStats:
    """The stage's consumer, handed with its processor (behind the crash-loop guard) and its
    observer to the one run loop."""
    log.info("%s: consuming %s", stage, ", ".join(inputs))
    guarded = Guarded(
        processor,
        group,
        # Short: the guard is best-effort, a database away must not slow the stage down.
        lambda: db.connect(settings, autocommit=True, timeout_s=3),
        max_crashes=settings.max_crashes,
        crash_marker=settings.test_crash_marker,
    )
    # The client id names the instance and process, so `da status` can say who holds what.
    client_id = f"{settings.instance_id or socket.gethostname()}:{os.getpid()}"
    consumer = make_consumer(settings, group, **{"client.id": client_id})
    observer.set_input_lag(lambda: _input_lag(consumer, inputs, settings.io_timeout_s))
    server = None
    if settings.metrics_port:
        server = HealthServer(observer, settings.metrics_host, settings.metrics_port)
        server.start()
        log.info(
            "%s: /metrics, /healthz, /readyz on http://%s:%d",
            stage,
            settings.metrics_host,
            server.port,
        )
    observer.start()
    _settle_heap()
    try:
        return run(
            consumer,
            guarded,
            inputs,
            batch_size=settings.batch_size,
            poll_timeout_s=settings.poll_timeout_s,
            batch_linger_s=settings.batch_linger_s,
            stop=stop,
            observer=observer,
            **limits,
        )
    finally:
        observer.close()
        if server is not None:
            server.close()


def _settle_heap() -> None:
    """What start-up built (modules, schemas, clients) lives as long as the process: frozen out
    of the collector's reach, it is not scanned again by each full collection. A batch's objects
    mostly die with the batch, by reference counting: the young generation is collected after
    10,000 surviving allocations instead of 700, so that a batch in hand is not scanned (and
    promoted) over and over. Measured: the collector took 2-3 µs of each event's CPU in GEP,
    demux and the DEP before, under 0.1 after."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _input_lag(consumer: Consumer, inputs: list[str], timeout_s: float) -> tuple[int, int]:
    """The group's total lag over its input and the sum of its committed offsets (which moves
    when any instance commits)."""
    meta = consumer.list_topics(timeout=timeout_s).topics
    parts = [TopicPartition(t, p) for t in inputs if t in meta for p in sorted(meta[t].partitions)]
    lag = total = 0
    for tp in consumer.committed(parts, timeout=timeout_s):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(tp.topic, tp.partition), timeout=timeout_s
        )
        start = tp.offset if tp.offset >= 0 else low
        lag += max(0, high - start)
        total += max(0, tp.offset)
    return lag, total


class _ParkedCount:
    """How many events an owner has parked, on a connection of its own (the loop's sample runs
    between batches, never inside the processor's transaction)."""

    def __init__(self, settings: Settings, owner: str) -> None:
        self.settings = settings
        self.owner = owner
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None

    def __call__(self) -> int:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close()
            self.conn = db.connect(self.settings, autocommit=True)
        return parking.count(self.conn, self.owner)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
