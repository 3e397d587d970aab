"""The supervisor behind ``da up``: every registered stage as child processes, N instances of each
consuming stage, each restarted when it exits, with back-off; what a container runtime's restart
policy does, for a machine without one.

- Instance ``<stage>-<i>`` runs ``da run <stage>`` with ``DA_INSTANCE_ID=<host>-<stage>-<i>`` (its
  own transactional id) and ``DA_METRICS_PORT`` = the stage's registry port + 100 x i, so its
  ``/metrics``, ``/healthz`` and ``/readyz`` are at known addresses.
- Its output goes to ``<state dir>/up/<instance>.log``; the supervisor writes one line per start,
  exit and restart to ``<state dir>/up/supervisor.log``.
- An instance that exits is started again after 1 s, doubling up to 30 s while it keeps failing
  quickly; one that ran for a minute starts again after 1 s.
- With ``--web`` (``da up --web``) the browser console (``da web``) is one more child, ``web-0``.
- SIGTERM (``da down``) stops every instance with SIGTERM (each finishes its batch), waits for
  them, and exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from common import stages

PORT_STRIDE = 100
STEADY_S = 60.0  # an instance that ran this long failed fresh, not in a loop
MAX_BACKOFF_S = 30.0
STOP_GRACE_S = 90.0
WEB = "web"  # the console's child: not a stage, started as `da web`


def up_dir(state: Path) -> Path:
    return state / "up"


def instance_names(instances: int) -> list[tuple[str, str, int]]:
    """(instance, stage short name, index) of every child ``da up`` runs."""
    out = []
    for stage in stages.STAGES:
        count = instances if stage.consumes else 1  # the collector holds one HTTP port
        out += [(f"{stage.short_name}-{i}", stage.short_name, i) for i in range(count)]
    return out


@dataclass
class Child:
    name: str
    stage: str
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 1.0
    due: float = 0.0  # when to start it again
    restarts: int = 0
    env: dict[str, str] = field(default_factory=dict)


def _da(stage: str) -> list[str]:
    args = [WEB] if stage == WEB else ["run", stage]
    return [sys.executable, "-m", "cli.main", *args]


class Supervisor:
    def __init__(
        self,
        state: Path,
        instances: int,
        log: TextIO,
        command: Callable[[str], list[str]] | None = None,
        web: bool = False,
    ) -> None:
        self.dir = up_dir(state)
        self.command = command or _da
        self.log = log
        self.stop = threading.Event()
        host = socket.gethostname()
        self.children = []
        for name, stage, i in instance_names(instances):
            port = stages.get(stage).metrics_port + PORT_STRIDE * i
            env = {"DA_INSTANCE_ID": f"{host}-{name}"}
            if stages.get(stage).consumes:
                env["DA_METRICS_PORT"] = str(port)
            self.children.append(Child(name, stage, i, env=env))
        if web:
            self.children.append(Child(f"{WEB}-0", WEB, 0))

    def say(self, line: str) -> None:
        self.log.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {line}\n")
        self.log.flush()

    def start(self, child: Child) -> None:
        with (self.dir / f"{child.name}.log").open("ab") as out:
            child.proc = subprocess.Popen(
                self.command(child.stage),
                env={**os.environ, **child.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a ^C at the terminal reaches the supervisor only
            )
        child.started = time.monotonic()
        self.say(f"started {child.name} (pid {child.proc.pid})")

    def run(self) -> int:
        for child in self.children:
            self.start(child)
        while not self.stop.wait(0.5):
            now = time.monotonic()
            for child in self.children:
                if child.proc is not None and child.proc.poll() is not None:
                    code = child.proc.returncode
                    ran = now - child.started
                    if ran >= STEADY_S:
                        child.backoff = 1.0
                    child.due = now + child.backoff
                    child.backoff = min(MAX_BACKOFF_S, child.backoff * 2)
                    child.restarts += 1
                    child.proc = None
                    self.say(
                        f"{child.name} exited with status {code} after {ran:.0f}s; restart "
                        f"#{child.restarts} in {child.due - now:.0f}s"
                    )
                elif child.proc is None and now >= child.due:
                    self.start(child)
        return self.shutdown()

    def shutdown(self) -> int:
        running = [
            (c.name, c.proc) for c in self.children if c.proc is not None and c.proc.poll() is None
        ]
        for _, proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name, proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.say(f"stopped {name} (status {proc.returncode})")
        self.say("supervisor stopped")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.supervise", description=__doc__)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--web", action="store_true", help="Also run the console (da web).")
    args = parser.parse_args(argv)
    directory = up_dir(args.state)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "supervisor.log").open("a") as log:
        sup = Supervisor(args.state, args.instances, log, web=args.web)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _s, _f: sup.stop.set())
        sup.say(f"supervising {len(sup.children)} instance(s)")
        return sup.run()


if __name__ == "__main__":
    sys.exit(main())
