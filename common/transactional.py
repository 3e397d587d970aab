"""Kafka to Kafka, exactly once: the processor GEP and demux run in.

Commit sequence for one batch (all inside one Kafka transaction):

1. begin the transaction;
2. hand each message to the handler and produce what it returns; a message the handler rejects
   (``InvalidEvent``, or an exception its content caused: ``common.faults.MESSAGE_FAULTS``), or
   whose outputs would exceed the largest record the broker takes, is produced to the
   dead-letter topic instead (same transaction); then flush, so the broker's verdict on every
   record is known before the commit;
3. send the consumed offsets to the transaction (the group coordinator fences a zombie that
   lost its partitions, KIP-447);
4. commit: outputs, dead letters and offsets become visible to read-committed consumers
   together.

Errors follow librdkafka's transactional contract: a retriable error repeats the same call (its
outcome is open, so nothing is aborted or rewound); an error that requires an abort aborts the
transaction and the batch is retried from its first offset; a fatal error (a newer instance
fenced this one) ends the process. A record the broker refuses for what it is (too large, an
invalid record: ``common.faults``) leaves the transaction abortable too; the message it came from
is remembered as condemned, and the retried batch dead-letters it instead of handling it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import cast

import msgspec
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from common import faults
from common.deadletter import DEFAULT_MAX_BYTES, DeadLetterLimit, dead_letter, record_size
from common.errors import InvalidEvent, TransientError
from common.runloop import Consumer, Headers, Message, Producer, Stopper
from common.wedge import Watchdog, exit_wedged, until_done

log = logging.getLogger(__name__)
# An idle stage commits its positions at least this often, to find a wedged producer early.
IDLE_PROBE_S = 30.0


class Output(msgspec.Struct, frozen=True):
    """One record to produce. A struct: a handler builds one per record it emits, and a frozen
    dataclass costs several times as much to build."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


Handler = Callable[[Message], Sequence[Output]]
"""Turns one consumed message into the messages to produce. Pure: no I/O, no commits.
Raises ``InvalidEvent`` for a message that can never succeed. Outputs to the stage's dead-letter
topic (built with ``common.deadletter``) count as dead letters."""

MessageId = tuple[str, int, int]


def message_id(msg: Message) -> MessageId:
    return (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)


def next_offsets(batch: Sequence[Message]) -> list[TopicPartition]:
    """The offset to resume from, per partition: one past the last message handled."""
    last: dict[tuple[str, int], int] = {}
    for m in batch:
        tp = (m.topic() or "", m.partition() or 0)
        offset = m.offset() or 0
        if offset > last.get(tp, -1):
            last[tp] = offset
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


class TransactionalProcessor:
    def __init__(
        self,
        stage: str,
        producer: Producer,
        handler: Handler,
        dead_letter_topic: str,
        *,
        timeout_s: float,
        limit: DeadLetterLimit,
        stop: Stopper,
        wedged: Callable[[str], None] | None = None,
        max_message_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.stage = stage
        self.max_bytes = max_message_bytes
        # Messages known to be bad before their handler runs: refused by the broker on an earlier
        # attempt, or quarantined by ``common.guard``; the next attempt dead-letters them.
        self.condemned: dict[MessageId, InvalidEvent] = {}
        self._refused: dict[MessageId, InvalidEvent] = {}
        self._bare: set[MessageId] = set()  # their dead letter was refused too: send headers only
        self.stop = stop
        # Transaction calls are bounded (``common.wedge``): past twice their timeout the client
        # is taken for wedged and the process ends.
        self._watchdog = Watchdog(timeout_s * 2 + 5, wedged or exit_wedged)
        self.producer = producer
        self.handler = handler
        self.dead_letter_topic = dead_letter_topic
        self.timeout_s = timeout_s
        self.limit = limit
        self.produced = 0
        self.dead_lettered = 0
        self._in_txn = False
        # The offset last committed per partition, so an idle poll commits only what moved.
        self._committed: dict[tuple[str, int], int] = {}
        self._last_txn = time.monotonic()
        # Fences an older instance with the same transactional id and aborts what it left open;
        # with the broker away at start-up this times out, and librdkafka wants it repeated for
        # as long as that lasts (nothing is open yet, and a stop ends the repeats).
        self._until_done(
            lambda: producer.init_transactions(timeout_s), give_up_on_stop=True, bounded=False
        )

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start from the group's committed offsets: they move only with a committed batch."""

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """Nothing is in flight between batches."""
        for p in partitions:
            self._committed.pop((p.topic, p.partition), None)

    def idle(self, consumer: Consumer, positions: list[TopicPartition]) -> None:
        """Commit the positions past the last batch's commit marker, in a transaction of their
        own: nothing but markers and aborted records lies between, so nothing is skipped, and
        the group coordinator fences a zombie's offsets here as it does in ``process``."""
        moved = [
            tp for tp in positions if tp.offset > self._committed.get((tp.topic, tp.partition), -1)
        ]
        if moved:
            self._transact(consumer, moved, lambda: (0, 0))
        elif time.monotonic() - self._last_txn > IDLE_PROBE_S:
            # Nothing to commit for a while: commit the same positions anyway. After a broker
            # restart a transactional producer can be wedged without knowing it; finding out now
            # (the call is bounded, see ``common.wedge``) restarts an idle stage before data waits.
            self._transact(consumer, positions, lambda: (0, 0))

    def process(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        produced, dead = self._transact(
            consumer, next_offsets(batch), lambda: self._produce_batch(batch)
        )
        self.produced += produced
        self.dead_lettered += dead
        if self.condemned or self._bare:  # almost always both empty
            for msg in batch:
                self.condemned.pop(message_id(msg), None)
                self._bare.discard(message_id(msg))

    def _transact(
        self,
        consumer: Consumer,
        offsets: list[TopicPartition],
        produce: Callable[[], tuple[int, int]],
    ) -> tuple[int, int]:
        self._abort_leftover()
        # Step 1
        self.producer.begin_transaction()
        self._in_txn = True
        try:
            # Step 2
            self._refused = {}
            produced, dead = produce()
            self.producer.flush(self.timeout_s)
            if self._refused:
                raise TransientError(f"the broker refused records of {sorted(self._refused)}")
            # Step 3
            group = consumer.consumer_group_metadata()
            self._until_done(
                lambda: self.producer.send_offsets_to_transaction(offsets, group, self.timeout_s)
            )
            # Step 4
            self._until_done(lambda: self.producer.commit_transaction(self.timeout_s))
            self._in_txn = False
        except KafkaException as exc:
            err = exc.args[0]
            if not isinstance(err, KafkaError) or err.fatal():
                raise  # e.g. fenced by a newer instance: this one must stop
            self._condemn_refused()
            # The transaction cannot complete (a message timed out while the broker was away,
            # a rebalance fenced our offsets, ...): abort it and let the loop retry the batch.
            self._abort_leftover()
            raise TransientError(f"transaction aborted: {err.str()}") from exc
        except BaseException:
            self._condemn_refused()
            self._abort_leftover(raise_errors=False)
            raise
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset
        self._last_txn = time.monotonic()
        return produced, dead

    def _produce_batch(self, batch: Sequence[Message]) -> tuple[int, int]:
        produced = dead = 0
        dead_letter_topic = self.dead_letter_topic
        condemned = self.condemned
        for msg in batch:
            invalid = condemned.get(message_id(msg)) if condemned else None
            outputs: Sequence[Output] = ()
            if invalid is None:
                try:
                    outputs = self.handler(msg)
                    invalid = self._too_large(outputs)
                except Exception as exc:
                    invalid = faults.from_handler(exc)
                    if invalid is None:
                        raise
            if invalid is not None:
                self.limit.record(True)
                mid = message_id(msg)
                limit = 0 if mid in self._bare else self.max_bytes
                dl = dead_letter(self.stage, msg, invalid, max_bytes=limit)
                self._produce(msg, self.dead_letter_topic, dl.key, dl.value, dl.headers)
                dead += 1
                continue
            letters = 0
            for out in outputs:
                if out.topic == dead_letter_topic:
                    letters += 1
                    self.limit.record(True)
            if letters < len(outputs) or not outputs:
                self.limit.record(False)
            for out in outputs:
                self._produce(msg, out.topic, out.key, out.value, out.headers)
            produced += len(outputs) - letters
            dead += letters
        return produced, dead

    def _too_large(self, outputs: Sequence[Output]) -> InvalidEvent | None:
        """An output the broker would refuse makes the whole message a dead letter: none of its
        outputs is produced, so a message never half-arrives."""
        for out in outputs:
            size = record_size(out.key, out.value, out.headers or ())
            if size > self.max_bytes:
                return InvalidEvent(
                    "too_large",
                    f"an output to {out.topic} would be about {size} bytes, more than the "
                    f"{self.max_bytes} a record may have (DA_MAX_MESSAGE_BYTES)",
                )
        return None

    def _condemn_refused(self) -> None:
        """Records the broker refused for what they are: their messages are dead-lettered on the
        retry. A dead letter refused in turn is retried as headers only (the value dropped)."""
        for mid, invalid in self._refused.items():
            if mid in self.condemned:
                self._bare.add(mid)
            self.condemned[mid] = invalid
        self._refused = {}

    def _until_done(
        self, call: Callable[[], None], *, give_up_on_stop: bool = False, bounded: bool = True
    ) -> None:
        until_done(
            self._watchdog,
            call,
            give_up=lambda: give_up_on_stop and self.stop.is_set(),
            wait=self.stop.wait,
            bounded=bounded,
        )

    def _produce(
        self,
        msg: Message,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> None:
        hdrs = cast(Headers | None, headers)

        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is not None and faults.kafka_verdict(err) is faults.Verdict.DATA:
                self._refused[message_id(msg)] = InvalidEvent(
                    "rejected_by_broker", f"{err.name()}: {err.str()}"
                )

        while True:
            try:
                self.producer.produce(topic, value, key, headers=hdrs, on_delivery=delivered)
                return
            except BufferError:
                # The local queue is full: let librdkafka deliver some, then try again.
                self.producer.poll(0.05)
            except KafkaException as exc:
                invalid = faults.as_invalid(exc)
                if invalid is None:
                    raise
                # Refused before it left (librdkafka's own size check): the same road.
                mid = message_id(msg)
                self._refused[mid] = invalid
                raise TransientError(f"retrying without offset {mid}: {invalid}") from exc

    def _abort_leftover(self, *, raise_errors: bool = True) -> None:
        """Abort a transaction a failed batch left open. With the broker away this is retried
        until it works or a stop is requested; a restarted instance aborts it too, on start."""
        if not self._in_txn:
            return
        try:
            self._until_done(
                lambda: self.producer.abort_transaction(self.timeout_s), give_up_on_stop=True
            )
            self._in_txn = False
        except Exception as exc:
            if raise_errors:
                raise
            log.warning("could not abort the transaction: %s", exc)

    def tick(self, now: datetime, owned: frozenset[tuple[str, int]]) -> None:
        """GEP and demux keep no timers."""

    def close(self) -> None:
        self._abort_leftover(raise_errors=False)
        self.producer.flush(self.timeout_s)
        self._watchdog.close()
