"""What ``da status`` shows, kept current for the console by two threads of its own.

The fast one samples every stage's partitions and group once a second (a few Kafka requests and
one PostgreSQL query, whatever the number of viewers) and judges each stage against the sample
about three seconds old, as ``da status --interval 3`` would, and the one about a minute old. The
slow one reads what is dearer (dead letters by reason, the last errors, parked events, time behind)
every ``SLOW_EVERY_S``. Neither blocks a page: a broker that does not answer makes the status
stale, which the pages say, instead of freezing them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common import deadletter as dl
from common import stages
from common.dlq_read import Letter, read_letters
from common.settings import Settings
from common.stages import Stage
from common.status_model import StageSample
from common.status_read import LETTERS_READ, Details, Reader
from common.status_rows import KEEP_S, History, minute_ago, rows

log = logging.getLogger(__name__)

JUDGE_AFTER_S = 3.0  # the verdict compares with the sample this old, as `da status` does
SLOW_EVERY_S = 15.0
RECENT_ERRORS = 20


@dataclass(frozen=True)
class Error:
    """One dead letter, as the /status page lists it."""

    stage: str
    reason: str
    field: str
    detail: str
    failed_at: datetime | None
    source: str


@dataclass
class StatusView:
    """The latest status: one row per consuming stage (``common.status_rows``), each stage's lag
    over the last two minutes, and for how many samples in a row each verdict has held."""

    sampled_at: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    lag: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    errors: list[Error] = field(default_factory=list)
    problem: str | None = None
    initial_load: dict[str, Any] | None = None  # the latest initial load's progress, if any

    def row(self, short_name: str) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["stage"] == short_name), None)


# Reads the latest initial load's progress from a reader and a sample (the JSON ``da status -o
# json`` has as ``initial_load``); None when there was none.
LoadReader = Callable[[Reader, dict[str, StageSample]], dict[str, Any] | None]


class StatusFeed:
    def __init__(self, settings: Settings, initial_load: LoadReader | None = None) -> None:
        self.settings = settings
        self.initial_load = initial_load
        self.lock = threading.Lock()
        self.view = StatusView()
        self.history: History = []
        self.details: dict[str, Details] = {}
        self.stop = threading.Event()
        self.sampled = threading.Event()  # set by the first sample, good or not
        self.threads = [
            threading.Thread(target=self._fast, name="status-fast", daemon=True),
            threading.Thread(target=self._slow, name="status-slow", daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()

    def latest(self) -> StatusView:
        with self.lock:
            return self.view

    def _fast(self) -> None:
        reader = Reader(self.settings)
        try:
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    self._sample(reader)
                except Exception as exc:  # a broker away: say so, keep trying
                    log.warning("status sample failed: %s", exc)
                    with self.lock:
                        old = self.view
                        self.view = StatusView(
                            old.sampled_at, old.rows, old.lag, {}, [], str(exc), old.initial_load
                        )
                self.sampled.set()
                self.stop.wait(max(0.1, 1.0 - (time.monotonic() - began)))
        finally:
            reader.close()

    def _sample(self, reader: Reader) -> None:
        t = time.time()
        now = reader.sample()
        self.history = [(at, s) for at, s in self.history if t - at <= KEEP_S]
        self.history.append((t, now))
        before = next(
            (e for e in reversed(self.history) if t - e[0] >= JUDGE_AFTER_S), self.history[0]
        )
        past = minute_ago(self.history[:-1], t)
        found = rows(before, (t, now), past, self.history, self._cached)
        lag = {
            s.short_name: [(at, sample[s.name].lag) for at, sample in self.history]
            for s in stages.consuming()
        }
        load = self.initial_load(reader, now) if self.initial_load is not None else None
        with self.lock:
            old = self.view
            held = {
                r["stage"]: old.held.get(r["stage"], 0) + 1
                if (o := old.row(r["stage"])) is not None and o["verdict"] == r["verdict"]
                else 1
                for r in found
            }
            self.view = StatusView(t, found, lag, held, old.errors, None, load)

    def _cached(self, stage: Stage, sample: StageSample) -> Details | None:
        return self.details.get(stage.name)

    def _slow(self) -> None:
        reader = Reader(self.settings)
        try:
            while not self.stop.is_set():
                try:
                    self._read_slow(reader)
                except Exception as exc:
                    log.warning("dead letters and details not read: %s", exc)
                self.stop.wait(SLOW_EVERY_S)
        finally:
            reader.close()

    def _read_slow(self, reader: Reader) -> None:
        latest = self.history[-1][1] if self.history else {}
        errors: list[Error] = []
        for stage in stages.consuming():
            sample = latest.get(stage.name)
            letters = list(read_letters(self.settings, stage.name, limit=LETTERS_READ))
            errors += [_error(stage.short_name, x) for x in letters[-RECENT_ERRORS:]]
            if sample is not None and sample.error is None:
                self.details[stage.name] = reader.details(stage, sample, letters)
        errors.sort(key=lambda e: e.failed_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        with self.lock:
            self.view.errors = errors[:RECENT_ERRORS]


def _error(stage: str, x: Letter) -> Error:
    source = f"{x.get(dl.H_TOPIC) or '?'}[{x.get(dl.H_PARTITION) or '?'}]@{x.get(dl.H_OFFSET)}"
    return Error(
        stage,
        x.get(dl.H_REASON) or "unknown",
        x.get(dl.H_FIELD) or "",
        (x.get(dl.H_DETAIL) or "")[:200],
        x.failed_at(),
        source,
    )


def red(verdict: str) -> bool:
    """A verdict that makes what a stage's tables show stale: critical, unknown, or behind."""
    return verdict != "OK"
