"""One stage alone on preloaded input, in a fresh child process so its CPU and memory are its own.

The stage runs through ``common.launch`` exactly as the CLI runs it. Its clock starts when the
handler sees the first message (group join and broker metadata excluded) and stops when the run
loop reports the batch that reached ``n`` committed.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from bench import proc
from bench.report import Figure
from cli.schemas import codec_for
from common import stages as registry
from common.launch import run_store, run_transform
from common.runloop import Message, RunStats, Stopper
from common.settings import Settings
from common.store import Cursor, Prepares, StoreHandler
from common.topics import Topics
from common.transactional import Handler, Output

DEP = "fulfillment-state"
# The learning workload's DEPs, each measured alone on the DEs the learning demux wrote.
LEARNING_DEPS = ("content-catalog", "usage-metrics", "collection-rollup", "competency-stats")
# What the bench measures alone, by registry name (``stages.get`` also takes a DEP's own name).
STAGES = ("gep", "demux", DEP, *LEARNING_DEPS)
_LABELS = {"gep": "GEP alone (ingest -> canonical)", "demux": "demux alone (canonical -> DE)"}


class _Clock:
    """Marks the first message handled and each batch committed, with the CPU used by then."""

    def __init__(self, settings: Settings, n: int) -> None:
        self.settings = settings
        self.n = n
        self.started = self.ended = 0.0
        self.cpu_started = self.cpu_ended = 0.0
        self.usage_started: proc.Usage | None = None
        self.usage_ended: proc.Usage | None = None

    # CPU of all threads of this process (librdkafka's and libpq's work counts): process_time,
    # not /proc's 10 ms ticks, which made a run of a hundred DEs read 0 or 476 µs per DE.
    def first(self) -> None:
        if not self.started:
            self.usage_started = proc.usage(self.settings)
            self.started = time.monotonic()
            self.cpu_started = time.process_time()

    def batch(self, stats: RunStats) -> None:
        self.ended = time.monotonic()
        self.cpu_ended = time.process_time()
        if stats.messages >= self.n:
            self.usage_ended = proc.usage(self.settings)

    def services(self) -> proc.Share | None:
        if self.usage_started is None or self.usage_ended is None:
            return None
        seconds = self.ended - self.started
        return proc.share(
            self.usage_started, self.usage_ended, seconds, self.cpu_ended - self.cpu_started
        )


def _timed(handler: Handler, clock: _Clock) -> Handler:
    def call(msg: Message) -> Sequence[Output]:
        clock.first()
        return handler(msg)

    return call


class _TimedStore:
    """A DEP's handler with the clock started by its first decode. Its timers (if any) do not
    run: what is measured is the DEP's handling of its input."""

    def __init__(self, handler: StoreHandler[Any], clock: _Clock) -> None:
        self.handler = handler
        self.clock = clock

    def decode(self, msg: Message) -> Any:
        self.clock.first()
        return self.handler.decode(msg)

    def handle(self, events: Sequence[Any], cur: Cursor) -> None:
        self.handler.handle(events, cur)

    def prepare(self, cur: Cursor) -> None:
        # Passed through so the measured DEP sets up its connection once, as it does in service.
        if isinstance(self.handler, Prepares):
            self.handler.prepare(cur)


def measure(
    settings: Settings, stage: str, n: int, idle_stop_s: float, label: str | None = None
) -> Figure:
    """Run ``stage`` until it handled ``n`` messages (or saw none for ``idle_stop_s``; with
    ``n`` 0 that is how it ends, and the figure counts what it handled)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    topics = Topics(settings.namespace)
    clock = _Clock(settings, n)
    stop = Stopper()
    limits: dict[str, Any] = {
        "max_messages": n or None,
        "idle_stop_s": idle_stop_s,
        "on_batch": clock.batch,
    }
    if stage not in STAGES:
        raise ValueError(f"no stage named {stage!r}; known: {', '.join(STAGES)}")
    spec = registry.get(stage)
    inputs = spec.input_topics(topics)
    if spec.dep is None:
        handler = _timed(spec.handler(settings, codec_for(settings)), clock)
        stats = run_transform(settings, spec.name, handler, inputs, stop, **limits)
        name = _LABELS[spec.name]
    else:
        store = _TimedStore(spec.dep.build(settings, codec_for(settings)), clock)
        stats = run_store(settings, spec.name, store, inputs, stop, **limits)
        name = f"DEP {spec.dep.name} alone (DE -> PostgreSQL)"
    note = f"{stats.retries} batch(es) retried after a transient fault" if stats.retries else ""
    if stats.messages < n:
        note = f"stopped idle after {stats.messages:,} of {n:,} messages; {note}".rstrip("; ")
    return Figure(
        label or name,
        stats.messages,
        clock.ended - clock.started,
        cpu_s=clock.cpu_ended - clock.cpu_started,
        # Not ru_maxrss: Linux carries the parent's high-water mark over fork and exec.
        peak_rss_kib=proc.peak_rss_kib(),
        services=clock.services(),
        note=note,
    )


def measure_isolated(
    settings: Settings, stage: str, n: int, idle_stop_s: float = 30.0, label: str | None = None
) -> Figure:
    """``measure`` in a fresh interpreter (spawned, not forked: nothing of ours is inherited)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, settings, stage, n, idle_stop_s, label).result()
