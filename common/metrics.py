"""The Prometheus metrics a consuming stage exports, and the producer wrapper through which it
sees the stage's dead letters and transaction commits (``common.observe`` keeps them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from common.deadletter import H_REASON, header
from common.runloop import Headers, Producer

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class CommitListener(Protocol):
    def pending_dead_letter(self, reason: str, *, whole: bool) -> None: ...
    def committed(self, seconds: float) -> None: ...


class StageMetrics:
    """Every metric a consuming stage exports, in its own registry (one per process)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        r = self.registry = CollectorRegistry()
        self.records = Counter(
            "da_records", "Input records handled, by outcome", ["stage", "outcome"], registry=r
        )
        self.dead_letters = Counter(
            "da_dead_letters", "Dead letters written, by reason", ["stage", "reason"], registry=r
        )
        self.batch_seconds = Histogram(
            "da_batch_seconds", "Time to handle and commit a batch", ["stage"], buckets=_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.commit_seconds = Histogram(
            "da_commit_seconds",
            "Time to make a batch durable (Kafka transaction, or database transaction)",
            ["stage"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.rebalances = Counter(
            "da_rebalances", "Partitions assigned or revoked", ["stage", "event"], registry=r
        )
        self.repairs = Counter(
            "da_assignment_repairs",
            "The loop's view of its assignment found wrong and repaired: partitions adopted or "
            "released, fetched messages rewound (never expected)",
            ["stage", "kind"],
            registry=r,
        )
        self.retries = Counter(
            "da_retries", "Batches retried after a transient fault", ["stage"], registry=r
        )
        self.lag = Gauge(
            "da_consumer_lag",
            "Records between the consumer's position and the end, per owned partition",
            ["stage", "topic", "partition"],
            registry=r,
        )
        self.event_time_lag = Gauge(
            "da_event_time_lag_seconds",
            "Now minus the record time of the newest record handled; 0 when caught up",
            ["stage"],
            registry=r,
        )
        self.last_commit = Gauge(
            "da_last_commit_timestamp_seconds", "When a batch last committed", ["stage"], registry=r
        )
        self.last_turn = Gauge(
            "da_loop_last_turn_timestamp_seconds",
            "When the loop last turned",
            ["stage"],
            registry=r,
        )
        self.assigned = Gauge(
            "da_assigned_partitions", "Partitions this process owns", ["stage"], registry=r
        )
        self.parked = Gauge(
            "da_parked_events", "Events parked by this stage's owner", ["stage"], registry=r
        )
        self.healthy = Gauge("da_healthy", "1 when /healthz passes", ["stage"], registry=r)
        for outcome in ("ok", "dead_lettered"):
            self.records.labels(stage, outcome)
        for event in ("assigned", "revoked"):
            self.rebalances.labels(stage, event)
        self.retries.labels(stage)


class MeteredProducer:
    """Wraps a stage's producer: notes each dead letter's reason (counted only once its batch
    commits) and times the transaction's commit steps."""

    def __init__(self, inner: Producer, dead_letter_topic: str, observer: CommitListener) -> None:
        self.inner = inner
        self.dead_letter_topic = dead_letter_topic
        self.observer = observer
        self._commit_started: float | None = None

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        *,
        headers: Headers | None = None,
        on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
    ) -> None:
        if on_delivery is None:
            self.inner.produce(topic, value, key, headers=headers)
        else:
            self.inner.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
        if topic == self.dead_letter_topic:
            raw = [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in headers or []]
            self.observer.pending_dead_letter(
                header(raw, H_REASON) or "unknown", whole=header(raw, "da-index") is None
            )

    def poll(self, timeout: float = 0) -> int:
        return self.inner.poll(timeout)

    def flush(self, timeout: float = -1) -> int:
        return self.inner.flush(timeout)

    def init_transactions(self, timeout: float = -1) -> None:
        self.inner.init_transactions(timeout)

    def begin_transaction(self) -> None:
        self.inner.begin_transaction()

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None:
        if self._commit_started is None:
            self._commit_started = time.monotonic()
        self.inner.send_offsets_to_transaction(positions, group_metadata, timeout)

    def commit_transaction(self, timeout: float = -1) -> None:
        self.inner.commit_transaction(timeout)
        if self._commit_started is not None:
            self.observer.committed(time.monotonic() - self._commit_started)
        self._commit_started = None

    def abort_transaction(self, timeout: float = -1) -> None:
        self._commit_started = None
        self.inner.abort_transaction(timeout)
