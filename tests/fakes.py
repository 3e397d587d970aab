"""In-memory stand-ins behind the run loop's Protocols, for unit tests that need nothing running."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition


@dataclass
class FakeMessage:
    _value: bytes | None
    _key: bytes | None = None
    _topic: str = "t"
    _partition: int = 0
    _offset: int = 0
    _headers: list[tuple[str, bytes]] | None = None
    _error: KafkaError | None = None

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> KafkaError | None:
        return self._error


@dataclass
class FakeConsumer:
    """Serves a fixed log per assigned partition; ``seek`` moves the read position like Kafka's.

    Rebalances behave as with confluent-kafka: ``rebalance`` queues one that the next
    ``consume`` runs through the callbacks first, and a callback that neither assigns nor
    unassigns (or raises) gets the assignment changed for it; a callback's exception makes that
    ``consume`` raise and lose what it had fetched. ``assign_unseen`` changes the assignment
    without any callback, as that fallback does when a callback fails."""

    log: dict[tuple[str, int], list[FakeMessage]]
    at: dict[tuple[str, int], int] = field(default_factory=dict)
    committed: list[TopicPartition] = field(default_factory=list)
    closed: bool = False
    seeks: list[TopicPartition] = field(default_factory=list)
    assigned: set[tuple[str, int]] = field(default_factory=set)
    pending: list[tuple[str, list[TopicPartition]]] = field(default_factory=list)
    callbacks: dict[str, Any] = field(default_factory=dict)
    group: list[tuple[str, int]] | None = None  # what subscribing assigns; None: every partition
    _changed: bool = False

    def subscribe(
        self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, on_lost: Any = None
    ) -> None:
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost or on_revoke}
        group = self.log if self.group is None else self.group
        self._rebalance("assign", [TopicPartition(t, p) for (t, p) in group if t in topics])

    def rebalance(self, kind: str, partitions: list[TopicPartition]) -> None:
        """Queue an "assign", "revoke" or "lost" for the next ``consume``; "unseen" assigns
        without any callback."""
        self.pending.append((kind, partitions))

    def assign_unseen(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            key = (p.topic, p.partition)
            self.assigned.add(key)
            self.at[key] = self._committed(key)

    def _committed(self, key: tuple[str, int]) -> int:
        """The group's committed offset (the last commit of the partition), else the earliest."""
        done = [tp.offset for tp in self.committed if (tp.topic, tp.partition) == key]
        return done[-1] if done else 0

    def _rebalance(self, kind: str, partitions: list[TopicPartition]) -> None:
        if kind == "unseen":
            self.assign_unseen(partitions)
            return
        self._changed = False
        callback = self.callbacks.get(kind)
        try:
            if callback is not None:
                callback(self, partitions)
        finally:
            if not self._changed:
                if kind == "assign":
                    self.assign_unseen(partitions)
                else:
                    self.assigned -= {(p.topic, p.partition) for p in partitions}

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        out: list[FakeMessage] = []
        for tp, msgs in self.log.items():
            if tp not in self.assigned:
                continue
            pos = self.at[tp]
            take = msgs[pos : pos + num_messages - len(out)]
            out += take
            self.at[tp] = pos + len(take)
        while self.pending:
            self._rebalance(*self.pending.pop(0))  # raising: the fetched messages are lost
        return out

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append(partition)
        self.at[(partition.topic, partition.partition)] = partition.offset

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self.assigned)]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return 0, len(self.log.get((partition.topic, partition.partition), []))

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self._changed = True
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if key in self.assigned:
                raise KafkaException(KafkaError(KafkaError._CONFLICT, f"{key} already assigned"))
            self.assigned.add(key)
            self.at[key] = tp.offset if tp.offset >= 0 else self._committed(key)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self._changed = True
        for tp in partitions:
            self.assigned.discard((tp.topic, tp.partition))

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        self.committed += list(kwargs.get("offsets", []))

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(p.topic, p.partition, self.at[(p.topic, p.partition)])
            for p in partitions
        ]

    def consumer_group_metadata(self) -> Any:
        return object()

    def close(self) -> None:
        self.closed = True


def messages(topic: str, values: Sequence[bytes], partition: int = 0) -> list[FakeMessage]:
    return [
        FakeMessage(v, _topic=topic, _partition=partition, _offset=i) for i, v in enumerate(values)
    ]


@dataclass
class FakeProducer:
    """Records a transactional producer's calls; ``fail`` maps a method name to the errors its
    next calls raise, one per call."""

    fail: dict[str, list[KafkaError]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    pending: list[tuple[str, str | bytes | None]] = field(default_factory=list)
    visible: list[tuple[str, str | bytes | None]] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)
    # What the broker says of a record (topic, value) on delivery: None accepts it.
    reject_delivery: Callable[[str, str | bytes | None], KafkaError | None] = lambda _t, _v: None
    _reports: list[tuple[Any, KafkaError]] = field(default_factory=list)
    _txn_failed: bool = False
    offsets: list[TopicPartition] = field(default_factory=list)  # sent, committed or not

    def _call(self, name: str) -> None:
        self.calls.append(name)
        errors = self.fail.get(name)
        if errors:
            from confluent_kafka import KafkaException

            raise KafkaException(errors.pop(0))

    def init_transactions(self, timeout: float = -1) -> None:
        self._call("init_transactions")

    def begin_transaction(self) -> None:
        self._call("begin_transaction")
        self.pending = []

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        *,
        headers: Any = None,
        on_delivery: Any = None,
    ) -> None:
        self._call("produce")
        self.pending.append((topic, value))
        self.headers.append(headers)
        rejected = self.reject_delivery(topic, value)
        if rejected is not None:
            self._txn_failed = True
            if on_delivery is not None:
                self._reports.append((on_delivery, rejected))

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None:
        self._call("send_offsets_to_transaction")
        self.offsets += positions

    def commit_transaction(self, timeout: float = -1) -> None:
        self._call("commit_transaction")
        if self._txn_failed:
            from confluent_kafka import KafkaException

            # As librdkafka: a record the broker refused leaves the transaction abortable.
            raise KafkaException(
                KafkaError(KafkaError._STATE, "a record failed", txn_requires_abort=True)
            )
        self.visible += self.pending
        self.pending = []

    def abort_transaction(self, timeout: float = -1) -> None:
        self._call("abort_transaction")
        self.pending = []
        self._txn_failed = False

    def poll(self, timeout: float = -1) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        reports, self._reports = self._reports, []
        for callback, err in reports:
            callback(err, None)
        return 0
