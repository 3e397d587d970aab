"""Dead letters: an event that can never succeed, kept with its original bytes and the reason.

The record on the dead-letter topic has the original key and value untouched; the headers say
where it came from and why it was rejected, so ``da dlq`` tools can show, filter and replay it.
A ``DeadLetterLimit`` stops a stage that starts rejecting nearly everything (a bad deploy or a
partner's broken release) instead of shovelling the whole stream into the dead-letter topic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from common.errors import InvalidEvent
from common.runloop import Message

H_REASON = "da-reason"
H_DETAIL = "da-detail"
H_FIELD = "da-field"
H_STAGE = "da-stage"
H_TOPIC = "da-source-topic"
H_PARTITION = "da-source-partition"
H_OFFSET = "da-source-offset"
H_FAILED_AT = "da-failed-at"
METADATA = frozenset(
    {H_REASON, H_DETAIL, H_FIELD, H_STAGE, H_TOPIC, H_PARTITION, H_OFFSET, H_FAILED_AT}
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(stage: str, msg: Message, exc: InvalidEvent) -> DeadLetter:
    headers = [
        (H_REASON, exc.reason.encode()),
        (H_DETAIL, exc.detail.encode()[:2000]),
        (H_STAGE, stage.encode()),
        (H_TOPIC, (msg.topic() or "").encode()),
        (H_PARTITION, str(msg.partition()).encode()),
        (H_OFFSET, str(msg.offset()).encode()),
        (H_FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]
    if exc.field:
        headers.append((H_FIELD, exc.field.encode()))
    # Keep the original headers after ours, so a replay can restore them.
    headers += [(k, v) for k, v in (msg.headers() or []) if k not in METADATA]
    return DeadLetter(msg.key(), msg.value(), headers)


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
