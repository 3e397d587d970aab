"""What a stage process tells its operator: Prometheus metrics and its health, kept by a
``StageObserver`` that the run loop calls (``common.runloop.Observer``), never by the handlers.

Health, as ``/healthz`` reports it and the watchdog acts on:

- the loop must complete a turn within ``DA_LOOP_TTL_S``: a wedged or frozen loop fails;
- a process with no partition for longer than ``DA_UNASSIGNED_MAX_S`` while its input has lag
  that nobody consumes (the group's committed offsets do not move) fails: it is alive but out of
  its group, the state a broker restart can leave a librdkafka consumer in;
- failing for longer than ``DA_UNHEALTHY_EXIT_S``, the process exits with status 3 for its
  supervisor to restart it (a fresh consumer rejoins; a fresh producer fences the old one).

Readiness (``/readyz``) is "joined its group and has its clients": it never fails for lag.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from confluent_kafka import KafkaException, TopicPartition

from common.metrics import StageMetrics
from common.runloop import Consumer, Message

log = logging.getLogger(__name__)
EXIT_UNHEALTHY = 3  # as a wedged Kafka client: the supervisor restarts the process
LAG_EVERY_S = 5.0


class ParkedCount(Protocol):
    """How many events the stage has parked; holds a database connection until closed."""

    def __call__(self) -> int: ...
    def close(self) -> None: ...


class StageObserver:
    """The run loop's hooks for one process: metrics, health, and the watchdog that ends a
    process which stays unhealthy."""

    def __init__(
        self,
        stage: str,
        *,
        loop_ttl_s: float,
        unassigned_max_s: float,
        unhealthy_exit_s: float,
        input_lag: Callable[[], tuple[int, int] | None] | None = None,
        parked: ParkedCount | None = None,
        exit: Callable[[str], None] | None = None,
    ) -> None:
        self.metrics = StageMetrics(stage)
        self.stage = stage
        self.loop_ttl_s = loop_ttl_s
        self.unassigned_max_s = unassigned_max_s
        self.unhealthy_exit_s = unhealthy_exit_s
        # (total lag, sum of committed offsets) of the group's input, read while unassigned.
        self._input_lag = input_lag
        self._parked = parked
        self._exit = exit or _exit_unhealthy
        now = time.monotonic()
        self.last_turn = now
        self.joined = False
        self.owned: set[tuple[str, int]] = set()
        self._unowned_since: float | None = now
        self._stuck_since: float | None = None  # unassigned while the input lag did not move
        self._last_committed_sum: int | None = None
        self._pending: list[tuple[str, bool]] = []
        self._next_lag = 0.0
        self._unhealthy_since: float | None = None
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def set_input_lag(self, read: Callable[[], tuple[int, int] | None]) -> None:
        self._input_lag = read

    # -- the loop's hooks --------------------------------------------------------------------
    def assigned(self, partitions: list[TopicPartition]) -> None:
        self.joined = True
        self.owned.update((p.topic, p.partition) for p in partitions)
        self.metrics.rebalances.labels(self.stage, "assigned").inc(len(partitions))
        self._ownership_changed()

    def revoked(self, partitions: list[TopicPartition]) -> None:
        self.owned.difference_update((p.topic, p.partition) for p in partitions)
        self.metrics.rebalances.labels(self.stage, "revoked").inc(len(partitions))
        for p in partitions:
            with contextlib.suppress(KeyError):  # never sampled
                self.metrics.lag.remove(self.stage, p.topic, str(p.partition))
        self._ownership_changed()

    def repaired(self, kind: str, count: int) -> None:
        self.metrics.repairs.labels(self.stage, kind).inc(count)

    def turned(self, consumer: Consumer) -> None:
        now = time.monotonic()
        self.last_turn = now
        self.metrics.last_turn.labels(self.stage).set(time.time())
        if now >= self._next_lag:
            self._next_lag = now + LAG_EVERY_S
            self._sample(consumer, now)

    def batch(self, batch: Sequence[Message], seconds: float) -> None:
        m, s = self.metrics, self.stage
        whole = 0
        for reason, is_whole in self._pending:
            m.dead_letters.labels(s, reason).inc()
            whole += is_whole
        self._pending.clear()
        m.records.labels(s, "dead_lettered").inc(whole)
        m.records.labels(s, "ok").inc(max(0, len(batch) - whole))
        m.batch_seconds.labels(s).observe(seconds)
        m.last_commit.labels(s).set(time.time())
        newest = max((_record_time(msg) for msg in batch), default=0.0)
        if newest > 0:
            m.event_time_lag.labels(s).set(max(0.0, time.time() - newest))

    def retried(self, exc: BaseException) -> None:
        self._pending.clear()  # nothing of the batch was committed
        self.metrics.retries.labels(self.stage).inc()

    # -- from the processors -----------------------------------------------------------------
    def pending_dead_letter(self, reason: str, *, whole: bool) -> None:
        self._pending.append((reason, whole))

    def committed(self, seconds: float) -> None:
        self.metrics.commit_seconds.labels(self.stage).observe(seconds)

    # -- health ------------------------------------------------------------------------------
    def problem(self) -> str | None:
        """Why the process is unhealthy, or None."""
        now = time.monotonic()
        if now - self.last_turn > self.loop_ttl_s:
            return f"the loop has not turned for {now - self.last_turn:.0f}s"
        if self._stuck_since is not None and now - self._stuck_since > self.unassigned_max_s:
            return (
                f"no partition for {now - self._stuck_since:.0f}s while the input has lag "
                "that no instance consumes"
            )
        return None

    def ready(self) -> bool:
        return self.joined

    def start(self) -> None:
        self._watchdog.start()

    def close(self) -> None:
        self._stop.set()
        if self._parked is not None:
            self._parked.close()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            why = self.problem()
            self.metrics.healthy.labels(self.stage).set(0 if why else 1)
            now = time.monotonic()
            if why is None:
                self._unhealthy_since = None
                continue
            if self._unhealthy_since is None:
                self._unhealthy_since = now
                log.warning("%s: unhealthy: %s", self.stage, why)
            elif now - self._unhealthy_since > self.unhealthy_exit_s:
                self._exit(f"{self.stage}: unhealthy for {now - self._unhealthy_since:.0f}s: {why}")
                return

    def _ownership_changed(self) -> None:
        self.metrics.assigned.labels(self.stage).set(len(self.owned))
        if self.owned:
            self._unowned_since = self._stuck_since = None
            self._last_committed_sum = None
        elif self._unowned_since is None:
            self._unowned_since = time.monotonic()

    def _sample(self, consumer: Consumer, now: float) -> None:
        m, s = self.metrics, self.stage
        if self._parked is not None:
            try:
                m.parked.labels(s).set(self._parked())
            except Exception as exc:  # the database may be away; the loop reports that itself
                log.debug("parked count: %s", exc)
        if self.owned:
            total = _owned_lag(consumer, self.owned, m, s)
            if total == 0:
                m.event_time_lag.labels(s).set(0)  # caught up: nothing older is waiting
            return
        self._check_unassigned(consumer, now)

    def _check_unassigned(self, consumer: Consumer, now: float) -> None:
        if self._input_lag is None or self._unowned_since is None:
            return
        if now - self._unowned_since < min(self.unassigned_max_s, 10.0):
            return  # joining takes a few seconds; do not ask the broker while it happens
        try:
            found = self._input_lag()
        except Exception as exc:
            log.debug("input lag: %s", exc)
            return
        if found is None:
            return
        lag, committed_sum = found
        moving = self._last_committed_sum is not None and committed_sum != self._last_committed_sum
        self._last_committed_sum = committed_sum
        if lag == 0 or moving:
            self._stuck_since = None
        elif self._stuck_since is None:
            self._stuck_since = now


def _owned_lag(consumer: Consumer, owned: set[tuple[str, int]], m: StageMetrics, s: str) -> int:
    total = 0
    for tp in consumer.position([TopicPartition(t, p) for t, p in sorted(owned)]):
        high = _high(consumer, tp)
        if tp.offset < 0 or high is None:
            continue
        lag = max(0, high - tp.offset)
        total += lag
        m.lag.labels(s, tp.topic, str(tp.partition)).set(lag)
    return total


def _high(consumer: Consumer, tp: TopicPartition) -> int | None:
    get = getattr(consumer, "get_watermark_offsets", None)
    if get is None:
        return None
    part = TopicPartition(tp.topic, tp.partition)
    _, high = get(part, cached=True)  # from the last fetch response: no round trip
    if high is None or high < 0:  # nothing fetched yet from this partition: ask the broker
        try:
            _, high = get(part, timeout=2.0)
        except KafkaException as exc:
            # A leader that just moved (a broker lost, restarted) answers "not leader" until
            # the client's metadata follows: a gauge left unset a moment, never a crashed stage.
            log.debug("end offset of %s[%d]: %s", tp.topic, tp.partition, exc)
            return None
    return int(high) if high is not None and high >= 0 else None


def _record_time(msg: Message) -> float:
    stamp = getattr(msg, "timestamp", None)
    if stamp is None:
        return 0.0
    kind, ms = stamp()
    return ms / 1000 if kind and ms > 0 else 0.0


def _exit_unhealthy(why: str) -> None:
    # os._exit: the loop thread may be the one that is stuck, so a clean shutdown cannot be
    # counted on; nothing uncommitted is lost (offsets move only with a committed batch).
    log.critical("%s; exiting for a restart", why)
    logging.shutdown()
    os._exit(EXIT_UNHEALTHY)
