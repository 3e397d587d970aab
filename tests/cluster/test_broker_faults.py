"""The pipeline on a three-broker cluster (``da stack up --brokers 3``) keeps exactly-once results
through broker faults: one broker SIGKILLed mid-stream and restarted, every broker restarted in
turn (a rolling upgrade), the active controller killed, a broker paused (SIGSTOP) until it falls
out of the ISR. Topics have 3 replicas, 2 in sync.

GEP, demux and ``fulfillment-state`` run as processes while the input streams in chunks (so
that it is still flowing when the faults come); the tables must equal the oracle, each bad row
must be dead-lettered once, and each valid event must make exactly one DE. Each test prints how
long the cluster and the pipeline took to recover (``docs/reliability.md`` records them).

``make test`` runs the four faults one after another in one run of the pipeline (one start, one
stream, one check: a few minutes); ``make cluster`` adds one run per fault (``cluster_full``).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from common.kafka import ServiceUnavailable
from common.observe import EXIT_UNHEALTHY
from common.settings import Settings
from common.wedge import EXIT_WEDGED
from tests.cluster.cluster import (
    BROKERS,
    broker,
    controller,
    drop_topics,
    replicas_out_of_sync,
    running_cluster,
    wait_for,
)
from tests.conftest import env_for, fresh_settings
from tests.e2e.pipeline import REPO, Stages, da, prepare, wait_until_equal
from tests.e2e.test_fulfillment_pipeline import COMMANDS, check_tables, check_topics, write_input
from tests.oracle import expected_tables
from tests.services import Services

# ~300 rows a chunk at 20/s: unhurried, the stream would last four minutes; once the faults are
# over the rest goes in one go.
CHUNKS, RATE = 16, 20

Faults = Callable[["Run"], dict[str, float]]


@pytest.fixture(scope="module")
def kafka_cluster() -> Iterator[str]:
    with ExitStack() as cleanup:
        try:
            bootstrap = cleanup.enter_context(running_cluster())
        except ServiceUnavailable as exc:
            if os.environ.get("CI"):
                pytest.fail(f"CI: no three-broker cluster: {exc}", pytrace=False)
            pytest.skip(f"no three-broker cluster: {exc}")
        yield bootstrap


@pytest.fixture
def on_cluster(services: Services, kafka_cluster: str) -> Iterator[Settings]:
    """Fresh settings on the cluster (and the session's PostgreSQL); the deployed I/O timeout,
    since a leader lost with its broker moves only once the controller has fenced it (~9 s)."""
    with fresh_settings(Services(kafka_cluster, services.database_url, "launcher")) as current:
        yield replace(current, replication_factor=BROKERS, io_timeout_s=30.0)
        drop_topics(kafka_cluster, current.namespace)


class Run:
    """The input, streamed in chunks by a thread while faults run; the DEP's progress sampled."""

    def __init__(
        self,
        settings: Settings,
        env: dict[str, str],
        folder: Path,
        chunks: int = CHUNKS,
        rate: float = RATE,
    ) -> None:
        self.settings, self.env, self.folder, self.rate = settings, env, folder, rate
        path = folder / "events.csv"
        self.valid, ragged = write_input(path, seed=23)
        lines = path.read_text().splitlines(keepends=True)
        rows = [line for number, line in enumerate(lines[1:], 2) if number != ragged]
        size = -(-len(rows) // chunks)
        self.chunks = [lines[:1] + rows[i : i + size] for i in range(0, len(rows), size)]
        self.hurry = threading.Event()
        self.emitted: list[tuple[int, str]] = []
        self.progress: list[tuple[float, int]] = []  # (time, events in the DEP's table)
        self.done = threading.Event()
        self.supervised = threading.Event()
        self.restarts: list[tuple[str, int]] = []  # (instance, its exit status)
        self.streaming = threading.Thread(target=self.stream)
        self.finished = 0.0
        self.rows_sent = 0

    def stream(self) -> None:
        for number, chunk in enumerate(self.chunks):
            last = self.hurry.is_set()  # read once: the faults are over, the rest in one go
            if last:
                chunk = chunk[:1] + [row for part in self.chunks[number:] for row in part[1:]]
            file = self.folder / f"chunk-{number}.csv"
            file.write_text("".join(chunk))
            self.rows_sent += len(chunk) - 1
            pace = [] if last else ["--rate", str(self.rate)]
            emit = subprocess.run(
                da("emit", str(file), *pace), env=self.env, cwd=REPO, capture_output=True
            )
            self.emitted.append((emit.returncode, emit.stderr.decode()[-2000:]))
            if last:
                break
        self.finished = time.monotonic()

    def sample(self) -> None:
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            while not self.done.is_set():
                table = f"{self.settings.database_schema}.events"
                row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                self.progress.append((time.monotonic(), int(row[0]) if row else 0))
                time.sleep(0.25)

    def supervise(self, stages: Stages) -> None:
        """Restart a stage that exits, as its orchestrator would: a Kafka client wedged by a
        lost broker ends its process on purpose (``common.transactional``)."""
        while not self.supervised.wait(0.5):
            for instance, proc in list(stages.procs.items()):
                code = proc.poll()
                if code is not None:
                    self.restarts.append((instance, code))
                    stages.start(instance)

    def events(self) -> int:
        return self.progress[-1][1] if self.progress else 0

    def flowing(self, more: int = 30) -> float:
        """Wait until the DEP has taken ``more`` events since now (or the stream has ended)."""
        start = self.events()
        return wait_for(
            lambda: self.events() >= start + more or not self.streaming.is_alive(),
            f"{more} more events through the pipeline",
        )

    def longest_pause(self, since: float) -> float:
        """The longest time the DEP's table did not grow, from ``since`` to the stream's end."""
        grew = [b for (_, m), (b, n) in itertools.pairwise(self.progress) if n > m]
        spans = [b - a for a, b in itertools.pairwise(grew) if b > since and a < self.finished]
        return max(spans, default=0.0)

    def through(self, faults: Faults) -> dict[str, float]:
        """Run the pipeline while ``faults`` run; check every output; the recovery figures."""
        prepare(self.env)
        want = expected_tables(self.valid)
        stages = Stages(self.env, self.folder, COMMANDS)
        for instance in ("gep-1", "demux-1", "dep-1"):
            stages.start(instance)
        sampler = threading.Thread(target=self.sample)
        supervisor = threading.Thread(target=self.supervise, args=(stages,))
        sampler.start()
        supervisor.start()
        try:
            self.streaming.start()
            wait_for(lambda: self.events() > 0, "the first events through the pipeline")
            began = time.monotonic()
            figures = faults(self)
            self.hurry.set()
            self.streaming.join()
            # Each failed chunk's own report whole (a list's repr is cut short in the middle).
            failed = [
                f"chunk {n} exited {code}:\n{err}"
                for n, (code, err) in enumerate(self.emitted)
                if code
            ]
            assert not failed, "\n".join(failed)
            assert self.rows_sent == sum(len(chunk) - 1 for chunk in self.chunks)
            problems = wait_until_equal(lambda: check_tables(self.settings, want), 300)
            assert problems == [], stages.tails()
            figures["tables equal the oracle, after the stream (s)"] = (
                time.monotonic() - self.finished
            )
            check_topics(self.settings, self.valid)
        finally:
            self.hurry.set()
            self.supervised.set()
            supervisor.join()
            exits = stages.stop_all()
            self.done.set()
            sampler.join()
        assert set(exits.values()) == {0}, (exits, stages.tails())
        # Exits on purpose, for a restart: nothing else (a crash) may end a stage.
        assert {code for _, code in self.restarts} <= {EXIT_WEDGED, EXIT_UNHEALTHY}, self.restarts
        figures["stages restarted"] = len(self.restarts)
        figures["longest pause of the DEP after the first fault (s)"] = self.longest_pause(began)
        return figures


def _in_sync(run: Run) -> float:
    bootstrap = run.settings.kafka_bootstrap_servers
    return wait_for(
        lambda: replicas_out_of_sync(bootstrap, run.settings.namespace) == {},
        "every replica back in sync",
    )


def _not_controller() -> int:
    active = controller()
    return next(n for n in range(BROKERS, 0, -1) if n != active)


def _kill(run: Run) -> dict[str, float]:
    victim = _not_controller()
    broker("kill", victim)
    run.flowing()  # the pipeline goes on with two brokers
    started = broker("start", victim)
    return {"broker restarted (s)": started, "replicas in sync (s)": _in_sync(run)}


def _rolling_restart(run: Run) -> dict[str, float]:
    figures = {}
    for number in range(1, BROKERS + 1):
        # As an upgrade would: the next broker only once every replica is in sync again, or a
        # partition could be left with one replica and refuse acks=all writes.
        figures[f"broker {number} restarted (s)"] = broker("restart", number)
        figures[f"broker {number} replicas in sync (s)"] = _in_sync(run)
        run.flowing(10)
    return figures


def _controller_killed(run: Run) -> dict[str, float]:
    active = controller()
    broker("kill", active)
    elected = wait_for(lambda: controller() != active, "a new active controller")
    run.flowing()
    started = broker("start", active)
    return {
        "new controller elected (s)": elected,
        "old controller restarted (s)": started,
        "replicas in sync (s)": _in_sync(run),
    }


def _paused_out_of_the_isr(run: Run) -> dict[str, float]:
    victim = _not_controller()
    addresses = run.settings.kafka_bootstrap_servers.split(",")
    others = ",".join(a for number, a in enumerate(addresses, 1) if number != victim)
    broker("pause", victim)

    def out_of_isr() -> bool:
        lagging = replicas_out_of_sync(others, run.settings.namespace)
        return any(victim in out for out in lagging.values())

    dropped = wait_for(out_of_isr, f"broker {victim} out of the ISR")
    run.flowing()
    resumed = time.monotonic()
    broker("resume", victim)
    _in_sync(run)
    return {
        "out of the ISR after (s)": dropped,
        "resumed and in sync (s)": time.monotonic() - resumed,
    }


FAULTS = [_paused_out_of_the_isr, _kill, _controller_killed, _rolling_restart]


def _every_fault(run: Run) -> dict[str, float]:
    """Each fault in turn; each ends with every replica in sync, so the next starts clean."""
    figures: dict[str, float] = {}
    for fault in FAULTS:
        figures |= {f"{_name(fault)}: {key}": value for key, value in fault(run).items()}
    return figures


def _name(fault: Faults) -> str:
    return fault.__name__.strip("_")


def _run(
    faults: Faults,
    settings: Settings,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    **size: int,
) -> None:
    env = {**env_for(settings), "DA_REPLICATION_FACTOR": str(BROKERS), "DA_IO_TIMEOUT_S": "30"}
    figures = Run(settings, env, folder, **size).through(faults)
    with capsys.disabled():
        shown = ", ".join(f"{name} {round(value, 1):g}" for name, value in figures.items())
        print(f"\n  {_name(faults)}: {shown}")


def test_exactly_once_through_every_broker_fault_in_turn(
    on_cluster: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Smaller chunks at a slower pace: the stream outlasts four faults and stops soon after.
    _run(_every_fault, on_cluster, tmp_path, capsys, chunks=32, rate=15)


@pytest.mark.cluster_full
@pytest.mark.parametrize(
    "faults", FAULTS, ids=["broker-paused", "broker-killed", "controller-killed", "rolling-restart"]
)
def test_exactly_once_through_broker_faults(
    faults: Faults, on_cluster: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(faults, on_cluster, tmp_path, capsys)
