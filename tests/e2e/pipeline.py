"""What the end-to-end tests share: the real CLI as processes (``Stages``), a replay that runs a
fault script (kill, restart, start, stop instances) while ``da emit`` sends a file, and a wait
for the outputs to match an expectation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def da(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


def prepare(env: dict[str, str]) -> None:
    """Every topic and table, as an operator would create them."""
    for step in (da("topics", "ensure"), da("db", "migrate")):
        subprocess.run(step, env=env, cwd=REPO, check=True, capture_output=True)


STOP_TIMED_OUT = -1000  # the exit "code" of an instance that ignored SIGTERM for 60 s


class Stages:
    """The stage processes of one test; an instance is ``<stage>-<n>`` with its own instance id
    (the suffix of its transactional id), as distinct replicas would have. ``commands`` maps a
    stage to its ``da`` arguments."""

    def __init__(self, env: dict[str, str], logs: Path, commands: dict[str, list[str]]) -> None:
        self.env = env
        self.logs = logs
        self.commands = commands
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self._log_start: dict[str, int] = {}  # the log's size when the instance was started
        self.exits: dict[str, int] = {}
        # Instances that had exited on their own when their stop came (signalled too late).
        self.exited_unasked: set[str] = set()

    def start(self, instance: str) -> None:
        self.started[instance] = time.monotonic()
        self.exited_unasked.discard(instance)
        stage = instance.rsplit("-", 1)[0]
        with (self.logs / f"{instance}.log").open("ab") as log:
            self._log_start[instance] = log.tell()
            self.procs[instance] = subprocess.Popen(
                da(*self.commands[stage]),
                env={**self.env, "DA_INSTANCE_ID": instance},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self, instance: str) -> None:
        self.procs[instance].send_signal(signal.SIGKILL)
        self.procs[instance].wait()

    def _settled(self, instance: str) -> None:
        # A process signalled before its interpreter has started and installed its handlers
        # dies of the signal having done nothing; an orchestrator's stop is never that quick.
        # A stage installs them before its first log line: wait for that line (or its exit),
        # 60 s at most, as a loaded machine can take a while to get there.
        log, deadline = self.logs / f"{instance}.log", self.started[instance] + 60.0
        while (
            log.stat().st_size <= self._log_start[instance]
            and self.procs[instance].poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)

    def logged(self, instance: str, text: str) -> bool:
        """Whether this start of the instance has logged ``text`` yet."""
        with (self.logs / f"{instance}.log").open("rb") as log:
            log.seek(self._log_start[instance])
            return text.encode() in log.read()

    def stop(self, instance: str) -> None:
        """SIGTERM: finish the batch, commit, leave the group, exit 0."""
        self._settled(instance)
        self._terminate(instance)
        self._reap(instance)

    def stop_all(self) -> dict[str, int]:
        for instance in list(self.procs):
            self._settled(instance)
            self._terminate(instance)
        for instance in list(self.procs):
            self._reap(instance)
        return self.exits

    def _terminate(self, instance: str) -> None:
        if self.procs[instance].poll() is not None:
            self.exited_unasked.add(instance)
        self.procs[instance].send_signal(signal.SIGTERM)

    def _reap(self, instance: str) -> None:
        proc = self.procs.pop(instance)
        try:
            self.exits[instance] = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # deaf to SIGTERM: a failure, recorded, not left over
            proc.kill()
            proc.wait()
            self.exits[instance] = STOP_TIMED_OUT

    def act(self, action: str, instance: str) -> None:
        """ "kill", "stop", or "start" a new instance / "restart" a killed one."""
        if action == "kill":
            self.kill(instance)
        elif action == "stop":
            self.stop(instance)
        else:
            self.start(instance)

    def tails(self) -> dict[str, str]:
        return {p.stem: p.read_text()[-1500:] for p in self.logs.glob("*.log")}

    def tails_full(self) -> dict[str, str]:
        return {p.stem: p.read_text(errors="replace") for p in self.logs.glob("*.log")}


def replay(
    stages: Stages, file: Path, rate: float, script: list[tuple[str, str]], pause_s: float = 1.5
) -> tuple[int, str]:
    """``da emit FILE --rate RATE`` while ``script`` runs (one action every ``pause_s``);
    returns emit's exit status and stderr."""
    emit = subprocess.Popen(
        da("emit", str(file), "--rate", str(rate)),
        env=stages.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    for action, instance in script:
        time.sleep(pause_s)
        stages.act(action, instance)
    _, err = emit.communicate(timeout=120)
    return emit.returncode, err.decode()


def wait_until_equal(check: Callable[[], list[str]], timeout_s: float = 120) -> list[str]:
    """Poll ``check`` (the differences from what is expected) until it finds none or time is
    up; returns the last differences."""
    deadline = time.monotonic() + timeout_s
    while (problems := check()) and time.monotonic() < deadline:
        time.sleep(1)
    return problems


def status_rows(env: dict[str, str]) -> tuple[int, str, dict[str, dict[str, Any]]]:
    """`da status` as JSON: its exit status, its stderr, and its rows by stage (none when it
    printed nothing)."""
    done = subprocess.run(
        da("status", "--json", "--interval", "2"),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if not done.stdout:
        return done.returncode, done.stderr, {}
    doc = json.loads(done.stdout.splitlines()[-1])
    return done.returncode, done.stderr, {row["stage"]: row for row in doc["stages"]}
