"""Dead letters: an event that can never succeed, kept with its original bytes and the reason.

The record on the dead-letter topic has the original key and value untouched; the headers say
where it came from and why it was rejected, so ``da dlq`` tools can show, filter and replay it.
``build`` is the one road: every stage, the collector, GEP's per-element rejections and expired
parked events build their dead letters with it, and every one counts against the stage's
``DeadLetterLimit``.
A ``DeadLetterLimit`` stops a stage that starts rejecting nearly everything (a bad deploy or a
partner's broken release) instead of shovelling the whole stream into the dead-letter topic.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import KafkaError

from common import faults
from common.errors import InvalidEvent, TransientError
from common.runloop import Headers, Message, Producer
from common.settings import Settings

H_REASON = "da-reason"
H_DETAIL = "da-detail"
H_FIELD = "da-field"
H_STAGE = "da-stage"
H_TOPIC = "da-source-topic"
H_PARTITION = "da-source-partition"
H_OFFSET = "da-source-offset"
H_FAILED_AT = "da-failed-at"
# A dead letter too large to write keeps the head of the original and says what it cut.
H_TRUNCATED = "da-truncated"
H_LENGTH = "da-original-length"
H_SHA256 = "da-original-sha256"
METADATA = frozenset(
    {
        H_REASON,
        H_DETAIL,
        H_FIELD,
        H_STAGE,
        H_TOPIC,
        H_PARTITION,
        H_OFFSET,
        H_FAILED_AT,
        H_TRUNCATED,
        H_LENGTH,
        H_SHA256,
    }
)
KEPT_OF_TRUNCATED = 64 * 1024
# What a record costs on the wire beyond its key, value and headers (batch header, varints),
# generously: a dead letter must never be the record the broker refuses.
RECORD_OVERHEAD = 1024
MAX_DETAIL = 2000
DEFAULT_MAX_BYTES = Settings.max_message_bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def record_size(
    key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> int:
    """An upper bound of a record's size as the broker counts it against max.message.bytes."""
    size = RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    for k, v in headers:  # a loop, not sum() over a generator: this runs for every record
        size += len(k) + len(v)
    return size


def build(
    stage: str,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    detail: str,
    *,
    field: str | None = None,
    source: Message | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    now: datetime | None = None,
) -> DeadLetter:
    """Every dead letter of every stage is built here: the original key and value, then the
    headers that say who rejected it, why, and where it came from (``extra``: what a stage adds,
    e.g. the element index or the HTTP status), then the original message's own headers so a
    replay can restore them. One that would exceed ``max_bytes`` keeps the first
    ``KEPT_OF_TRUNCATED`` bytes of the value, with the original's length and sha256."""
    headers = [
        (H_REASON, reason.encode()),
        (H_DETAIL, detail.encode(errors="replace")[:MAX_DETAIL]),
        (H_STAGE, stage.encode()),
    ]
    if source is not None:
        headers += [
            (H_TOPIC, (source.topic() or "").encode()),
            (H_PARTITION, str(source.partition()).encode()),
            (H_OFFSET, str(source.offset()).encode()),
        ]
    headers.append((H_FAILED_AT, (now or datetime.now(UTC)).isoformat().encode()))
    if field:
        headers.append((H_FIELD, field.encode(errors="replace")[:MAX_DETAIL]))
    headers += extra
    original = [(k, v) for k, v in (source.headers() or []) if k not in METADATA] if source else []
    if record_size(key, value, headers + original) <= max_bytes:
        return DeadLetter(key, value, headers + original)
    whole = value or b""
    headers += [
        (H_TRUNCATED, b"true"),
        (H_LENGTH, str(len(whole)).encode()),
        (H_SHA256, hashlib.sha256(whole).hexdigest().encode()),
    ]
    head = whole[:KEPT_OF_TRUNCATED]
    if record_size(key, head, headers + original) <= max_bytes:
        return DeadLetter(key, head, headers + original)
    # Still too large: the key or the original headers are the bulk; the reason is what counts.
    key = None if key is None else key[:KEPT_OF_TRUNCATED]
    return DeadLetter(key, head[: max(0, max_bytes - record_size(key, b"", headers))], headers)


def dead_letter(
    stage: str,
    msg: Message,
    exc: InvalidEvent,
    *,
    extra: Sequence[tuple[str, bytes]] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> DeadLetter:
    """The dead letter of a consumed message."""
    return build(
        stage,
        msg.key(),
        msg.value(),
        exc.reason,
        exc.detail,
        field=exc.field,
        source=msg,
        extra=extra,
        max_bytes=max_bytes,
    )


def source_of(dl: DeadLetter) -> tuple[str, int, int] | None:
    """The (topic, partition, offset) of the consumed message a dead letter is of, if any."""
    topic, partition, offset = (header(dl.headers, h) for h in (H_TOPIC, H_PARTITION, H_OFFSET))
    if topic is None or partition is None or offset is None:
        return None
    return topic, int(partition), int(offset)


def stripped(dl: DeadLetter) -> DeadLetter:
    """A dead letter the broker refused even so (its limit is below ``DA_MAX_MESSAGE_BYTES``):
    the headers that say why, and what was cut, without the value."""
    ours = [(k, v) for k, v in dl.headers if k in METADATA and k != H_TRUNCATED]
    if header(dl.headers, H_LENGTH) is None:
        whole = dl.value or b""
        ours += [(H_LENGTH, str(len(whole)).encode())]
        ours += [(H_SHA256, hashlib.sha256(whole).hexdigest().encode())]
    return DeadLetter(dl.key, b"", [*ours, (H_TRUNCATED, b"true")])


def deliver(
    producer: Producer,
    records: Sequence[tuple[str, bytes | None, bytes | None, Headers]],
    timeout_s: float,
) -> list[int]:
    """Produce ``records`` (topic, key, value, headers) and wait until the broker has every one.
    Returns the indexes of those it refused for what they are (``common.faults``: too large,
    invalid); raises ``TransientError`` when any was not delivered for another reason."""
    refused: list[int] = []
    failed: list[str] = []

    def report(i: int) -> Callable[[KafkaError | None, object], None]:
        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is None:
                return
            if faults.kafka_verdict(err) is faults.Verdict.DATA:
                refused.append(i)
            else:
                failed.append(err.str())

        return delivered

    for i, (topic, key, value, headers) in enumerate(records):
        producer.produce(topic, value, key, headers=headers, on_delivery=report(i))
    remaining = producer.flush(timeout_s)
    if remaining or failed:
        raise TransientError(
            f"{remaining + len(failed)} of {len(records)} records not acknowledged by the broker"
            + (f": {failed[0]}" if failed else "")
        )
    return sorted(refused)


def header(headers: list[tuple[str, bytes]] | None, name: str) -> str | None:
    for k, v in headers or []:
        if k == name:
            return v.decode(errors="replace")
    return None


class DeadLetterLimitExceeded(Exception):
    """More than the allowed share of recent events was invalid: stop rather than dead-letter."""


class DeadLetterLimit:
    """Trips when, among the last ``window`` events, more than ``max_ratio`` were dead-lettered
    (and at least ``min_count``, so a handful of early bad rows never trips it)."""

    def __init__(self, max_ratio: float, window: int = 1000, min_count: int = 100) -> None:
        self.max_ratio = max_ratio
        self.min_count = min_count
        self._recent: deque[bool] = deque(maxlen=window)
        self._bad = 0

    def record(self, invalid: bool) -> None:
        if len(self._recent) == self._recent.maxlen and self._recent[0]:
            self._bad -= 1
        self._recent.append(invalid)
        self._bad += invalid
        if self._bad >= self.min_count and self._bad > self.max_ratio * len(self._recent):
            raise DeadLetterLimitExceeded(
                f"{self._bad} of the last {len(self._recent)} events were invalid "
                f"(limit {self.max_ratio:.0%}); stopping without committing them"
            )
