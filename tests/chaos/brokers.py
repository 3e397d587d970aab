"""The broker faults of a chaos run on a three-broker cluster (``--brokers 3``), injected as a
person would, through ``da stack broker ACTION N``:

- ``broker-kill``: a broker that is not the active controller SIGKILLed, started again;
- ``broker-restart``: a broker stopped (controlled shutdown) and started again, as an upgrade would;
- ``broker-pause``: a broker (not the controller) SIGSTOPped until the others drop it from the
  ISR, then SIGCONTed;
- ``controller-kill``: the active controller SIGKILLed, a new one elected, the old one started.

Each fault ends once every replica of the run's topics (and of the offsets and transaction logs)
is in sync again, as a rolling upgrade waits before the next broker: the next fault then never
takes a partition below ``min.insync.replicas``, which would be an outage, not a fault. Each
records how long the cluster took to recover.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from cli.stack import cluster
from tests.cluster.cluster import replicas_out_of_sync, wait_for
from tests.e2e.pipeline import REPO, da

log = logging.getLogger("chaos")
KINDS = ("broker-kill", "broker-restart", "broker-pause", "controller-kill")
START_S = 900.0  # how long a restarted broker may take to answer, as an orchestrator waits


class BrokerFaults:
    """``wait(seconds)`` passes time while the run's supervisor goes on."""

    def __init__(
        self, state: Path, namespace: str, rng: random.Random, wait: Callable[[float], None]
    ) -> None:
        self.state, self.namespace, self.rng, self.wait = state, namespace, rng, wait
        self.recovery: dict[str, list[float]] = {}  # "fault: what" -> seconds, each time

    def inject(self, kind: str) -> None:
        active = self._controller()
        others = [n.node_id for n in cluster.nodes(self.state) if n.node_id != active]
        if kind == "broker-kill":
            victim = self.rng.choice(others)
            self._broker("kill", victim)
            self.wait(self.rng.uniform(1.0, 5.0))
            self._note(kind, "broker back", self._broker("start", victim))
        elif kind == "broker-restart":
            victim = self.rng.choice(sorted([*others, active]))
            self._note(kind, "stopped and back", self._broker("restart", victim))
        elif kind == "broker-pause":
            self._pause(self.rng.choice(others))
        elif kind == "controller-kill":
            began = time.monotonic()  # the CLI's own start is slow on a busy machine: from here
            self._broker("kill", active)
            self._until(lambda: self._controller() != active, "a new active controller")
            self._note(kind, "killed, new controller elected", time.monotonic() - began)
            self.wait(self.rng.uniform(1.0, 5.0))
            self._note(kind, "old controller back", self._broker("start", active))
        else:
            raise ValueError(f"no broker fault {kind!r}")
        self._note(kind, "replicas in sync", self.in_sync())

    def _pause(self, victim: int) -> None:
        addresses = cluster.bootstrap(self.state).split(",")
        # A paused broker holds every request sent to it: ask the other two.
        others = ",".join(a for n, a in enumerate(addresses, 1) if n != victim)
        began = time.monotonic()
        self._broker("pause", victim)

        def dropped() -> bool:
            lagging = replicas_out_of_sync(others, self.namespace)
            return any(victim in out for out in lagging.values())

        self._until(dropped, "out of the ISR")
        self._note("broker-pause", "paused, out of the ISR", time.monotonic() - began)
        self.wait(self.rng.uniform(1.0, 5.0))
        self._broker("resume", victim)

    def _broker(self, action: str, number: int) -> float:
        """``da stack broker ACTION NUMBER``, supervising meanwhile; the seconds it took."""
        began = time.monotonic()
        log.info("da stack broker %s %d", action, number)
        proc = subprocess.Popen(
            da("stack", "broker", action, str(number), "--timeout", f"{START_S:g}"),
            env={**os.environ, "DA_STATE_DIR": str(self.state)},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        while proc.poll() is None:
            self.wait(0.5)
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"da stack broker {action} {number}: {err.strip()[-500:]}")
        return time.monotonic() - began

    def _controller(self) -> int:
        found = cluster.active_controller(self.state)
        if found is None:
            raise RuntimeError(f"no node of {self.state} has recorded a quorum leader")
        return found

    def in_sync(self) -> float:
        """Wait until every replica of the run's topics is in sync; the seconds it took."""
        bootstrap = cluster.bootstrap(self.state)
        return self._until(
            lambda: replicas_out_of_sync(bootstrap, self.namespace) == {}, "replicas in sync"
        )

    def _until(self, condition: Callable[[], bool], what: str) -> float:
        return wait_for(condition, what, START_S, sleep=self.wait)

    def _note(self, kind: str, what: str, seconds: float) -> None:
        log.info("%s: %s after %.1f s", kind, what, seconds)
        self.recovery.setdefault(f"{kind}: {what}", []).append(round(seconds, 1))
