"""The one run loop over Kafka. GEP, demux and every DEP are processors handed to it.

Each turn of the loop:

1. consume up to ``batch_size`` messages (rebalance callbacks run inside this call);
2. hand the batch to the processor, which handles it and commits it as one unit: its outputs,
   its dead letters and the consumed offsets become durable together or not at all
   (see ``common.transactional`` and ``common.store`` for the two ways this is done);
3. on a transient fault (broker away, database down) nothing of the batch was committed: seek
   every partition back to the batch's first offset, back off, and go round again, so the same
   messages are retried; nothing is skipped and nothing is dead-lettered;
4. any other exception is a bug: it propagates, the process exits non-zero without committing,
   and the orchestrator restarts it.

Which fault is which is decided in one place, ``common.faults``: by SQLSTATE class for
PostgreSQL (08 connection, 40001/40P01, 53 resources, 57P shutdown ... transient; 22 data,
23 integrity, 54 program limit ... the message's fault) and by error code for Kafka
(MSG_SIZE_TOO_LARGE, INVALID_RECORD ... the message's fault). A fault that is one message's
never reaches this loop: the processors isolate that message and dead-letter it.

Every turn, whether or not a message arrived, the processor's ``tick`` gets the wall-clock time
and the partitions this instance owns: a stage's timers (what expires, what has waited too long)
fire on time on an idle pipeline, committed like a batch. The processor decides how often its
timers really run.

SIGTERM and SIGINT set a flag that the loop reads between batches: the batch in hand is finished
and committed, the consumer leaves its group, and ``run`` returns.

What the loop processes is the consumer's real assignment, reconciled every turn with what the
processor was told (``common.assignment``): no fetched message is dropped unseen.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Protocol

from confluent_kafka import KafkaError, TopicPartition

from common import faults
from common.assignment import Ownership

log = logging.getLogger(__name__)
# How often an idle loop stores the consumer's positions (``Processor.idle``).
IDLE_ADVANCE_S = 1.0


class Message(Protocol):
    """The part of ``confluent_kafka.Message`` a stage uses (fakes implement it in unit tests)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...
    def error(self) -> KafkaError | None: ...


class Consumer(Protocol):
    def subscribe(
        self, topics: list[str], on_assign: Any = ..., on_revoke: Any = ..., on_lost: Any = ...
    ) -> None: ...
    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Any]: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def assignment(self) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int]: ...
    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...
    def incremental_unassign(self, partitions: list[TopicPartition]) -> None: ...
    def commit(self, *args: Any, **kwargs: Any) -> Any: ...
    def consumer_group_metadata(self) -> Any: ...
    def close(self) -> None: ...


Headers = list[tuple[str, str | bytes | None]]


class Producer(Protocol):
    """The part of ``confluent_kafka.Producer`` the processors use."""

    def produce(
        self,
        topic: str,
        value: str | bytes | None = ...,
        key: str | bytes | None = ...,
        *,
        headers: Headers | None = ...,
        on_delivery: Callable[[KafkaError | None, Any], None] | None = ...,
    ) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...
    def init_transactions(self, timeout: float = ...) -> None: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = ...
    ) -> None: ...
    def commit_transaction(self, timeout: float = ...) -> None: ...
    def abort_transaction(self, timeout: float = ...) -> None: ...


class Processor(Protocol):
    """A stage's handling of batches. Only ``run`` calls it, always from one thread."""

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions were assigned. May set start offsets with ``incremental_assign``; if it
        does not, the consumer starts from the group's committed offsets."""

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """Partitions were revoked or lost; called between batches, never during one."""

    def process(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        """Handle the batch and commit it, outputs and offsets together. Invalid events go to the
        dead-letter topic within the same commit. Raising means nothing was committed."""

    def idle(self, consumer: Consumer, positions: list[TopicPartition]) -> None:
        """Nothing arrived: the consumer's ``positions`` (of the partitions it owns) passed only
        records it never hands out (a transaction's commit marker, aborted records) since the
        last batch. Store them like a batch's offsets, so the lag of a caught-up stage reads 0
        instead of stopping one short of every marker. Raising a transient error is allowed: it
        is tried again on a later idle poll."""

    def tick(self, now: datetime, owned: frozenset[tuple[str, int]]) -> None:
        """Called on every turn of the loop, also when nothing arrived, never during a batch or a
        rebalance; ``owned``: the (topic, partition)s this instance holds. Runs the stage's
        timers (rate-limiting them itself) and commits what they write like a batch; must not
        block for long. A transient fault is the processor's to log and retry on a later tick;
        raising is a bug."""

    def close(self) -> None:
        """Release what the processor holds; the consumer is still open."""


def is_transient(exc: BaseException) -> bool:
    """Faults that may clear by themselves (``common.faults`` has the table by SQLSTATE and
    Kafka error code); everything else is a bad message or a bug."""
    return faults.is_transient(exc)


class StopRequested(Exception):
    """A stop was requested while waiting inside a rebalance callback: leave without committing
    anything (nothing was processed) and exit cleanly."""


class Stopper:
    """A stop flag that signals set and that back-off sleeps wake up on."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info(
                "received %s: finishing the batch in hand, then stopping",
                signal.Signals(signum).name,
            )
            self._event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


class Observer(Protocol):
    """Hooks around the loop for what cuts across stages (metrics, health); see
    ``common.observe``. Called from the loop's thread; a hook must not block for long."""

    def assigned(self, partitions: list[TopicPartition]) -> None: ...
    def revoked(self, partitions: list[TopicPartition]) -> None: ...
    def turned(self, consumer: Consumer) -> None:
        """Every turn of the loop, batch or not."""

    def batch(self, batch: Sequence[Message], seconds: float) -> None:
        """A batch was handled and committed in ``seconds``."""

    def retried(self, exc: BaseException) -> None:
        """A batch failed transiently; nothing of it was committed."""

    def repaired(self, kind: str, count: int) -> None:
        """The loop found its view of the assignment wrong and repaired it (``common.assignment``):
        ``kind`` is ``adopted`` (partitions assigned behind the processor's back), ``released``
        (held, but no longer assigned) or ``rewound`` (fetched messages of a partition not held).
        Never expected: each is an alarm, not a routine event."""


@dataclass
class RunStats:
    batches: int = 0
    messages: int = 0
    retries: int = 0
    # Ownership (common.assignment). Partitions librdkafka assigned without the processor
    # knowing, adopted; partitions the processor held that the consumer no longer had, released;
    # fetched messages of partitions the processor did not hold, rewound; fetched messages of
    # partitions revoked in the same consume(), left to their new owner.
    partitions_reconciled: int = 0
    partitions_released: int = 0
    messages_rewound_unowned: int = 0
    messages_after_revoke: int = 0
    # Every partition of the consumer's assignment -> what it is doing (see partition_states).
    partitions: dict[tuple[str, int], str] = field(default_factory=dict)

    def partition_states(self) -> list[tuple[str, int, str]]:
        """(topic, partition, state) for every assigned partition: ``processing``,
        ``assigning: ...`` (the processor is choosing start offsets, e.g. waiting for the
        database) or ``backing off: <fault>`` (the batch in hand waits to be retried). Safe to
        call from another thread."""
        return sorted((t, p, state) for (t, p), state in dict(self.partitions).items())


def run(
    consumer: Consumer,
    processor: Processor,
    topics: list[str],
    *,
    batch_size: int,
    poll_timeout_s: float,
    stop: Stopper,
    batch_linger_s: float | None = None,
    max_messages: int | None = None,
    idle_stop_s: float | None = None,
    on_batch: Callable[[RunStats], None] | None = None,
    observer: Observer | None = None,
) -> RunStats:
    """Run until ``stop`` is set (or, for tests and tools, ``max_messages`` were processed or
    nothing arrived for ``idle_stop_s``).

    A batch poll returns when it has ``batch_size`` messages or its timeout is over, whichever
    comes first, so with events trickling in, every stage they pass would hold them for its whole
    timeout. With ``batch_linger_s`` set, a stage that has gone idle waits up to
    ``poll_timeout_s`` for one event and handles it at once; while events arrive it waits at most
    ``batch_linger_s`` to fill a batch (a backlog fills it at once). Its first poll takes a whole
    batch, as without a linger: a stage restarted after dying on a batch must take that batch
    again, from the same first offset, for the crash-loop guard (``common.guard``) to know it."""
    linger_s = None if batch_linger_s is None else min(batch_linger_s, poll_timeout_s)
    flowing = took_any = False
    stats = RunStats()
    backoff = 0.0
    owner = Ownership(processor, stats, observer)
    consumer.subscribe(
        topics, on_assign=owner.on_assign, on_revoke=owner.on_revoke, on_lost=owner.on_lost
    )
    last_data = last_advance = time.monotonic()
    try:
        while not stop.is_set():
            if max_messages is not None and stats.messages >= max_messages:
                break
            if idle_stop_s is not None and time.monotonic() - last_data > idle_stop_s:
                break
            try:
                if linger_s is None or not took_any:
                    polled = consumer.consume(batch_size, poll_timeout_s)
                elif flowing:
                    polled = consumer.consume(batch_size, linger_s)
                else:
                    polled = consumer.consume(1, poll_timeout_s)
                batch = owner.take(consumer, polled)
            except StopRequested as exc:
                log.info("%s", exc)
                break
            flowing = bool(polled)
            took_any = took_any or flowing
            if observer is not None:
                observer.turned(consumer)
            owned = set(stats.partitions)
            if not polled and owned and time.monotonic() - last_advance >= IDLE_ADVANCE_S:
                last_advance = time.monotonic()
                _advance(consumer, processor, owned)
            processor.tick(datetime.now(UTC), frozenset(owned))
            if not batch:
                continue
            last_data = started = time.monotonic()
            try:
                processor.process(consumer, batch)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                stats.retries += 1
                if observer is not None:
                    observer.retried(exc)
                backoff = min(30.0, max(0.5, backoff * 2))
                log.warning("transient fault, retrying the batch in %.1fs: %s", backoff, exc)
                rewind(consumer, batch)
                owner.backing_off(str(exc))
                stop.wait(backoff)
                continue
            if backoff:
                owner.resumed()
            backoff = 0.0
            stats.batches += 1
            stats.messages += len(batch)
            if observer is not None:
                observer.batch(batch, time.monotonic() - started)
            if on_batch is not None:
                on_batch(stats)
    finally:
        processor.close()
        consumer.close()
    return stats


def _advance(consumer: Consumer, processor: Processor, owned: set[tuple[str, int]]) -> None:
    positions = [
        tp
        for tp in consumer.position([TopicPartition(t, p) for t, p in sorted(owned)])
        if tp.offset >= 0  # not fetched yet: nothing to store
    ]
    if not positions:
        return
    try:
        processor.idle(consumer, positions)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.info("could not store the idle positions, trying again later: %s", exc)


def first_offsets(batch: Sequence[Message]) -> dict[tuple[str, int], int]:
    """The batch's first offset in each of its partitions."""
    first: dict[tuple[str, int], int] = {}
    for m in batch:
        key, off = (m.topic() or "", m.partition() or 0), m.offset() or 0
        first[key] = min(first.get(key, off), off)
    return first


def rewind(consumer: Consumer, batch: Sequence[Message]) -> None:
    """Seek every partition of the batch back to the batch's first offset in it."""
    for (topic, partition), off in first_offsets(batch).items():
        consumer.seek(TopicPartition(topic, partition, off))
