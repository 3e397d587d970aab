"""The faults the chaos driver injects, and the supervisor that restarts what dies.

Every kind runs on a seeded schedule: SIGKILL a stage instance and restart it; scale a stage out
to three instances and, at its next turn, back to one (SIGTERM); restart the Kafka broker (on a
three-broker cluster instead: ``tests.chaos.brokers``' kill, controlled restart, pause out of the
ISR, and the active controller's kill); restart PostgreSQL; and scale a DEP in while PostgreSQL
restarts (the instances leaving are then waiting for the database in their assignment callback,
the one staying takes their partitions over as the database comes back). The supervisor plays the
orchestrator: an instance that exits without being told to (a stage gives up when the broker is
away at start-up, say) is started again.

``cpu_burners`` loads the machine on purpose for the whole run: rebalances, session timeouts and
database restarts then overlap as they do on a busy host, which is where ownership defects hide.
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cli.stack import kafka as launcher_kafka
from cli.stack import postgres as launcher_pg
from tests.chaos import brokers as cluster_faults
from tests.e2e.pipeline import Stages

log = logging.getLogger("chaos")
TRANSFORMS = ("gep", "demux")  # Kafka to Kafka: no database in their rebalance callbacks

KINDS = ("kill", "scale", "broker", "postgres", "scale-in-db-down")
CLUSTER_KINDS = tuple(k for k in KINDS if k != "broker") + cluster_faults.KINDS


def kinds(brokers: int) -> tuple[str, ...]:
    """The fault kinds of a run on ``brokers`` Kafka brokers (1 or 3)."""
    return KINDS if brokers == 1 else CLUSTER_KINDS


BROKER_START_S = cluster_faults.START_S


class Chaos:
    def __init__(
        self, stages: Stages, stack_dir: Path, seed: int, brokers: int = 1, namespace: str = ""
    ) -> None:
        self.stages = stages
        # As start_stack has it: the launchers write these paths into the servers' configs.
        self.stack_dir = stack_dir.resolve()
        self.rng = random.Random(seed)
        self.kinds = kinds(brokers)
        self.cluster = cluster_faults.BrokerFaults(self.stack_dir, namespace, self.rng, self._wait)
        self.injected: Counter[str] = Counter()
        self.unplanned_exits: Counter[int] = Counter()  # exit status -> how often
        self._scaled: set[str] = set()
        self._held_down: set[str] = set()  # killed on purpose, restarted by the fault itself
        self._order: list[str] = []

    def start(self) -> None:
        for stage in self.stages.commands:
            self.stages.start(f"{stage}-1")

    def next_kind(self) -> str:
        # Every kind once per round, in a seeded order: a short run still sees each of them.
        if not self._order:
            self._order = list(self.kinds)
            self.rng.shuffle(self._order)
        return self._order.pop()

    def inject(self) -> str:
        kind = self.next_kind()
        log.info("fault: %s", kind)
        if kind == "kill":
            victim = self.rng.choice(sorted(self.stages.procs))
            self._held_down.add(victim)
            self.stages.kill(victim)
            self._wait(self.rng.uniform(0.5, 2.0))
            self.stages.start(victim)
            self._held_down.discard(victim)
        elif kind == "scale":
            stage = self.rng.choice(sorted(self.stages.commands))
            extra = [f"{stage}-2", f"{stage}-3"]
            if stage in self._scaled:
                for instance in extra:
                    self.stages.stop(instance)
                self._scaled.discard(stage)
            else:
                for instance in extra:
                    self.stages.start(instance)
                self._scaled.add(stage)
        elif kind == "broker":
            before = launcher_kafka.status(self.stack_dir)
            launcher_kafka.stop(self.stack_dir)
            self._wait(self.rng.uniform(1.0, 3.0))
            # The restarted broker recovers every partition's log before it answers: at a load
            # average of ~50 on 2 cores that took past 90 s once, and the run died of it.
            after = launcher_kafka.start(self.stack_dir, timeout_s=BROKER_START_S)
            if after != before:  # the stages would never find it again
                raise RuntimeError(f"broker came back at {after}, not {before}")
        elif kind in cluster_faults.KINDS:
            self.cluster.inject(kind)
        elif kind == "postgres":
            launcher_pg.stop(self.stack_dir)
            self._wait(self.rng.uniform(1.0, 3.0))
            launcher_pg.start(self.stack_dir)
        else:
            self._scale_in_while_the_database_restarts()
        self.injected[kind] += 1
        return kind

    def _scale_in_while_the_database_restarts(self) -> None:
        stage = self.rng.choice(sorted(s for s in self.stages.commands if s not in TRANSFORMS))
        extra = [f"{stage}-2", f"{stage}-3"]
        if stage not in self._scaled:
            for instance in extra:
                self.stages.start(instance)
            self._scaled.add(stage)
        # Past their start-up checks (a stop during those is no rebalance), and then at once: the
        # group's rebalance, which takes a while, then assigns them partitions with the database
        # down, so their assignment callbacks are waiting for it when the stop comes.
        for instance in extra:
            self._wait_for_line(instance, "consuming ", timeout_s=120.0)
        log.info("scaling %s in while PostgreSQL restarts", stage)
        launcher_pg.stop(self.stack_dir)
        self._wait(self.rng.uniform(0.5, 2.0))
        for instance in extra:
            self.stages.stop(instance)
        self._scaled.discard(stage)
        self._wait(self.rng.uniform(0.5, 2.0))
        launcher_pg.start(self.stack_dir)

    def supervise(self) -> None:
        """Start again every instance that exited on its own."""
        for instance, proc in list(self.stages.procs.items()):
            if instance not in self._held_down and proc.poll() is not None:
                log.info("%s exited with %s; restarting it", instance, proc.returncode)
                self.unplanned_exits[proc.returncode] += 1
                self.stages.start(instance)

    def scale_back(self) -> None:
        for stage in sorted(self._scaled):
            for instance in (f"{stage}-2", f"{stage}-3"):
                self.stages.stop(instance)
        self._scaled.clear()

    def _wait_for_line(self, instance: str, text: str, timeout_s: float) -> None:
        """Until the instance (this start of it) has logged ``text``, exited, or time is up."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not self.stages.logged(instance, text):
            if self.stages.procs[instance].poll() is not None:
                return
            self._wait(0.5)

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.supervise()
            time.sleep(0.2)


@contextmanager
def cpu_burners(count: int) -> Iterator[None]:
    """``count`` processes that each keep a core busy until the block ends."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in burners:
            proc.kill()
        for proc in burners:
            proc.wait()
