"""Wiring: builds a stage's clients and processor from settings and hands them to the run loop.

The CLI calls these; tests call them too, with ``max_messages`` or ``idle_stop_s`` to stop.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from common import db
from common.deadletter import DeadLetterLimit
from common.guard import Condemning, Guarded
from common.kafka import check_kafka, make_consumer, make_producer
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
    processor = TransactionalProcessor(
        stage,
        make_producer(settings, transactional_id=transactional_id(settings, stage)),
        handler,
        topics.dead_letter(stage),
        timeout_s=settings.io_timeout_s,
        limit=DeadLetterLimit(settings.dead_letter_max_ratio),
        stop=stop,
        max_message_bytes=settings.max_message_bytes,
    )
    stats = _consume(settings, stage, settings.group_id(stage), processor, inputs, stop, limits)
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
    **limits: Any,
) -> RunStats:
    """``outbox_owner``: the handler writes to the outbox under this name; relay it (exactly
    once: ``outbox_exactly_once``, see ``common.outbox``)."""
    check_kafka(settings)
    db.check_database(settings)
    topics = Topics(settings.namespace)
    group = settings.group_id(stage)
    producer = make_producer(settings)
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
        topics.dead_letter(stage),
        timeout_s=settings.io_timeout_s,
        limit=limit,
        stop=stop,
        after_commit=None if relay is None else relay.relay,
        max_message_bytes=settings.max_message_bytes,
    )
    stats = _consume(settings, stage, group, processor, inputs, stop, limits)
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


def _consume(
    settings: Settings,
    stage: str,
    group: str,
    processor: Condemning,
    inputs: list[str],
    stop: Stopper,
    limits: dict[str, Any],
) -> RunStats:
    """The stage's consumer, handed with its processor (behind the crash-loop guard) to the one
    run loop."""
    log.info("%s: consuming %s", stage, ", ".join(inputs))
    guarded = Guarded(
        processor,
        group,
        # Short: the guard is best-effort, a database away must not slow the stage down.
        lambda: db.connect(settings, autocommit=True, timeout_s=3),
        max_crashes=settings.max_crashes,
        crash_marker=settings.test_crash_marker,
    )
    return run(
        make_consumer(settings, group),
        guarded,
        inputs,
        batch_size=settings.batch_size,
        poll_timeout_s=settings.poll_timeout_s,
        stop=stop,
        **limits,
    )
