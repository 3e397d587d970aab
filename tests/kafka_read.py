"""Read a whole topic back, as a downstream consumer would (read committed)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from common.kafka import make_consumer
from common.settings import Settings


def read_topic(
    settings: Settings, topic: str, *, expect: int, linger_s: float = 3.0, timeout_s: float = 90.0
) -> list[Any]:
    """Read until ``expect`` messages arrived (or the timeout), then ``linger_s`` longer so that
    any extra message (a duplicate) is seen too."""
    consumer = make_consumer(settings, f"reader-{uuid.uuid4().hex}")
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(out) < expect:
            out += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
        end = time.monotonic() + linger_s
        while time.monotonic() < end:
            out += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return out
