"""Rebalances of a DEP's instances on real Kafka and PostgreSQL, while the database goes away:
scale out, the database restarts while the new instances are being assigned, scale in during the
outage; the instance that stays must end up applying every partition, and say so.

The instances are run loops in threads of this process (one consumer each, as separate
processes would have); the database outage is a ``TcpCut`` between them and PostgreSQL, so the
server the rest of the suite uses keeps running.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from urllib.parse import urlparse

import pytest

from cli.sample.fulfillments import generate
from common.codec import Codec
from common.launch import run_store
from common.runloop import RunStats, Stopper
from common.settings import Settings
from common.topics import Topics
from dep import registry
from tests.integration.test_store import STAGE, _setup, _tables
from tests.oracle import expected_tables
from tests.tcp_cut import TcpCut, tcp_cut

CODEC = Codec()
PARTITIONS = 6


class Instances:
    """DEP instances as threads, each with its own stop flag; what they log, by instance."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stops: dict[str, Stopper] = {}
        self.threads: dict[str, threading.Thread] = {}
        self.stats: dict[str, RunStats] = {}
        self.errors: dict[str, BaseException] = {}
        self.lines: list[tuple[str, str]] = []
        self.watchers: list[Callable[[str, str], None]] = []

    def start(self, name: str) -> None:
        self.stops[name] = Stopper()
        thread = threading.Thread(name=name, target=self._run, args=(name,), daemon=True)
        self.threads[name] = thread
        thread.start()

    def _run(self, name: str) -> None:
        topic = Topics(self.settings.namespace).sink_bucket("demux", "fulfillment")
        try:
            self.stats[name] = run_store(
                self.settings,
                STAGE,
                registry.get("fulfillment-state").build(self.settings, CODEC),
                [topic],
                self.stops[name],
                on_batch=lambda stats: self.stats.__setitem__(name, stats),
            )
        except BaseException as exc:
            self.errors[name] = exc

    def stop(self, name: str, timeout_s: float = 90) -> None:
        self.stops[name].set()
        self.threads[name].join(timeout_s)
        assert not self.threads[name].is_alive(), f"{name} ignored its stop"

    def said(self, name: str, text: str) -> bool:
        return any(n == name and text in line for n, line in list(self.lines))


class _Capture(logging.Handler):
    def __init__(self, instances: Instances) -> None:
        super().__init__(logging.INFO)
        self.instances = instances

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.instances.lines.append((record.threadName or "", line))
        for watch in self.instances.watchers:
            watch(record.threadName or "", line)


@pytest.fixture
def database_cut(settings: Settings) -> Iterator[tuple[Settings, TcpCut]]:
    """``settings`` whose database connections go through a cut the test controls."""
    url = urlparse(settings.database_url)
    with tcp_cut(url.hostname or "127.0.0.1", url.port or 5432) as cut:
        proxied = url._replace(netloc=url.netloc.replace(f":{url.port}", f":{cut.port}"))
        yield (
            dataclasses.replace(settings, database_url=proxied.geturl(), partitions=PARTITIONS),
            cut,
        )


@pytest.fixture
def instances(database_cut: tuple[Settings, TcpCut]) -> Iterator[Instances]:
    group = Instances(database_cut[0])
    capture = _Capture(group)
    root = logging.getLogger()
    root.addHandler(capture)
    previous = root.level
    root.setLevel(min(previous, logging.INFO))
    yield group
    for name in group.threads:
        group.stops[name].set()
    for thread in group.threads.values():
        thread.join(60)
    root.removeHandler(capture)
    root.setLevel(previous)


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_scale_in_while_the_database_restarts_leaves_every_partition_applied(
    database_cut: tuple[Settings, TcpCut], instances: Instances
) -> None:
    settings, cut = database_cut
    rows = [{k: str(v) for k, v in asdict(r).items()} for r in generate(seed=11, count=400)]
    produce = _setup(settings, rows[:150])
    instances.start("dep-1")
    _wait(lambda: instances.said("dep-1", "assigned " + produce), "dep-1's first assignment")

    # The database goes away the moment a new instance is given partitions: it is then inside
    # its assignment callback, reading its stored offsets.
    cut_once = threading.Lock()

    def cut_on_first_assignment(name: str, line: str) -> None:
        if name != "dep-1" and line.startswith("assigned " + produce) and cut_once.acquire(False):
            cut.cut()

    instances.watchers.append(cut_on_first_assignment)
    instances.start("dep-2")
    instances.start("dep-3")
    _wait(lambda: cut_once.locked(), "a new instance's assignment")
    _wait(
        lambda: (
            instances.said("dep-2", "cannot read stored offsets")
            or instances.said("dep-3", "cannot read stored offsets")
        ),
        "a new instance waiting for the database",
    )
    instances.stop("dep-2")  # scale in during the outage
    instances.stop("dep-3")
    cut.restore()
    _setup(settings, rows[150:])
    want = expected_tables(rows)
    _wait(lambda: _tables(settings) == (want.event_ids, want.current, want.history), "tables")
    # The instance that stayed holds every partition, each with its state, all processing.
    states = instances.stats["dep-1"].partition_states()
    assert states == [(produce, p, "processing") for p in range(PARTITIONS)]
    assert instances.errors == {}
