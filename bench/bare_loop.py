"""What the bare-client ceilings (``bench.bare``, ``bench.bare_dep``) share: how each is timed,
its consume loop, and the schemas it reads and writes with."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from typing import Any

from fastavro import parse_schema

from bench import proc
from bench.report import Figure
from cli.schemas import codec_for
from common.codec import HEADER_LEN, REGISTRY_HEADER_LEN
from common.runloop import Message
from common.settings import Settings


def schema(settings: Settings, name: str) -> tuple[Any, bytes]:
    """The parsed newest schema of ``name`` and the framing the stages write it with."""
    codec = codec_for(settings)
    try:
        return parse_schema(json.loads(codec.latest(name).text)), codec.header(name)
    finally:
        codec.close()


def body(value: bytes) -> io.BytesIO:
    # The stages' records in either framing: registry (00 + id) or single-object (C3 01 + crc).
    return io.BytesIO(value[REGISTRY_HEADER_LEN if value[:1] == b"\x00" else HEADER_LEN :])


class Timer:
    def __init__(self) -> None:
        self.started = self.ended = self.cpu_started = self.cpu_ended = 0.0
        self.handled = 0

    def first(self) -> None:
        if not self.started:
            self.started = time.monotonic()
            self.cpu_started = proc.cpu_s(os.getpid())

    def committed(self, count: int) -> None:
        self.handled += count
        self.ended = time.monotonic()
        self.cpu_ended = proc.cpu_s(os.getpid())

    def figure(self, name: str, n: int) -> Figure:
        note = "" if self.handled >= n else f"stopped idle after {self.handled:,} of {n:,}"
        return Figure(
            name,
            self.handled,
            self.ended - self.started,
            cpu_s=self.cpu_ended - self.cpu_started,
            peak_rss_kib=proc.peak_rss_kib(),
            note=note,
        )


def consume_loop(
    consumer: Any,
    batch_size: int,
    n: int,
    idle_stop_s: float,
    timer: Timer,
    commit: Callable[[list[Message]], None],
) -> None:
    idle_since = time.monotonic()
    while timer.handled < n:
        batch: list[Message] = [m for m in consumer.consume(batch_size, 0.5) if m.error() is None]
        if not batch:
            if time.monotonic() - idle_since > idle_stop_s:
                return
            continue
        timer.first()
        commit(batch)
        timer.committed(len(batch))
        idle_since = time.monotonic()
