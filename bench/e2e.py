"""The whole pipeline: GEP, demux and the fulfillment-state DEP as real ``da`` processes.

The three start on fresh topics and wait, subscribed; then the events are produced to the ingest
topic and the clock runs from the first ``produce()`` until the DEP's ``events`` table holds all
of them (rows and offsets commit in one transaction, so that is the last batch committed).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO

from bench import proc
from bench.ingest import produce, produce_at, warm_producer
from bench.report import Figure
from cli.emit_input import Message
from common import db
from common.settings import Settings

_COMMANDS = {
    "gep": ["gep", "run"],
    "demux": ["demux", "run"],
    "dep fulfillment-state": ["dep", "run", "fulfillment-state"],
}
_ASSIGNED = re.compile(r"assigned (?!nothing)\S+\[\d+\]")
# The row count costs the database a few ms; polled more often it would be part of the load.
_POLL_S = 0.25
# The latency percentiles leave out the events of the stream's first seconds: the producer's and
# the stages' clients are cold then (metadata, first fetch positions, first transactions of each
# partition). Those events are reported apart, as the start-up's worst.
WARMUP_S = 2.0


def stage_env(settings: Settings) -> dict[str, str]:
    """The process environment plus every setting as its ``DA_*`` variable."""
    env = dict(os.environ)
    for f in fields(settings):
        if f.name == "kafka_properties":
            continue  # each is its own DA_KAFKA_<PROPERTY> variable, already in the environment
        env["DA_" + f.name.upper()] = str(getattr(settings, f.name))
    env["DA_LOG_LEVEL"] = "INFO"  # readiness is read off the "assigned" log line
    return env


def _da() -> list[str]:
    script = Path(sys.executable).with_name("da")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


@dataclass
class _Stage:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def cpu_s(self) -> float:
        return proc.cpu_s(self.proc.pid)


def _start(settings: Settings, workdir: Path) -> list[_Stage]:
    env = stage_env(settings)
    stages: list[_Stage] = []
    for name, args in _COMMANDS.items():
        log_path = workdir / f"{name.replace(' ', '-')}.log"
        log = log_path.open("wb")
        child = subprocess.Popen([*_da(), *args], env=env, stdout=log, stderr=log)
        stages.append(_Stage(name, child, log_path, log))
    return stages


def _finish(stages: list[_Stage], notes: list[str]) -> None:
    for s in stages:
        code = _stop(s)
        if code != 0:
            notes.append(f"`da {' '.join(_COMMANDS[s.name])}` exited {code}: {s.tail(5)}")
        s.log.close()
    for s in stages:
        errors = [ln for ln in s.output().splitlines() if " ERROR " in ln or "Traceback" in ln]
        if errors:
            notes.append(f"{s.name} logged {len(errors)} error(s), the first: {errors[0]}")


@dataclass(frozen=True)
class Latency:
    """Ingest -> committed row at a fixed rate: each event from its ``produce()`` to the
    ``stored_at`` (``now()`` of the DEP's transaction) of its row. The percentiles are of the
    events produced after the first ``WARMUP_S``; ``startup_max_ms``: the worst before."""

    rate: float  # asked
    achieved: float  # events produced per second, as the producer managed
    events: int  # measured: produced after the warm-up
    p50_ms: float
    p99_ms: float
    max_ms: float
    stage_cpu_us: float  # the three stages' CPU per event
    startup_events: int = 0
    startup_max_ms: float = 0.0


def run_latency(
    settings: Settings, messages: list[Message], rate: float, workdir: Path, timeout_s: float
) -> tuple[Latency, list[str]]:
    """The three stages running, ``messages`` produced at ``rate`` per second."""
    notes: list[str] = []
    stages = _start(settings, workdir)
    try:
        _wait_ready(stages, timeout_s=60)
        producer = warm_producer(settings)  # before the CPU readings: its second is not the run's
        cpu_before = sum(s.cpu_s() for s in stages)
        started = time.monotonic()
        sent = produce_at(settings, messages, rate, producer)
        span = max(sent.values(), default=0.0) - min(sent.values(), default=0.0)
        achieved = (len(sent) - 1) / max(span, 1e-9)
        _wait_rows(settings, stages, len(messages), started, timeout_s)
        cpu = sum(s.cpu_s() for s in stages) - cpu_before
    finally:
        _finish(stages, notes)
    with db.connect(settings, autocommit=True) as conn:
        rows = conn.execute("SELECT event_id, extract(epoch FROM stored_at) FROM events").fetchall()
    first = min(sent.values(), default=0.0)
    latencies: list[float] = []
    startup: list[float] = []
    for event_id, at in rows:
        produced = sent.get(str(event_id))
        if produced is not None:
            warm = produced - first >= WARMUP_S
            (latencies if warm else startup).append((float(str(at)) - produced) * 1000)
    latencies.sort()
    if not latencies:
        raise RuntimeError(f"no stored event matches one produced after the first {WARMUP_S:g} s")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return Latency(
        rate,
        achieved,
        len(latencies),
        pct(0.5),
        pct(0.99),
        latencies[-1],
        cpu / len(messages) * 1e6,
        len(startup),
        max(startup, default=0.0),
    ), notes


def run_pipeline(
    settings: Settings, messages: list[Message], workdir: Path, timeout_s: float
) -> tuple[list[Figure], list[str]]:
    """Figures: emit during the run, the pipeline end to end, and each stage process in it."""
    stages: list[_Stage] = []
    notes: list[str] = []
    try:
        stages = _start(settings, workdir)
        _wait_ready(stages, timeout_s=60)
        producer = warm_producer(settings)  # before the CPU readings: its second is not the run's
        cpu_before = {s.name: s.cpu_s() for s in stages}
        usage_before = proc.usage(settings)
        own_before = time.process_time()
        started = time.monotonic()
        emitted = produce(settings, messages, "emit, while the pipeline runs", producer)
        done = _wait_rows(settings, stages, len(messages), started, timeout_s)
        own = time.process_time() - own_before  # emit and the row-count poller
        usage_after = proc.usage(settings)
        seconds = done - started
        cpu = {s.name: s.cpu_s() - cpu_before[s.name] for s in stages}
        rss = {s.name: proc.peak_rss_kib(s.proc.pid) for s in stages}
        measured = sum(cpu.values()) + own
        figures = [
            emitted,
            Figure(
                "pipeline end to end (3 processes)",
                len(messages),
                seconds,
                cpu_s=measured,
                services=proc.share(usage_before, usage_after, seconds, measured),
                note="CPU: the three stages and the emitting process together",
            ),
            *(
                Figure(
                    f"  process `da {' '.join(_COMMANDS[s.name])}`",
                    0,
                    seconds,
                    cpu_s=cpu[s.name],
                    peak_rss_kib=rss[s.name],
                )
                for s in stages
            ),
        ]
    finally:
        _finish(stages, notes)
    return figures, notes


def _wait_ready(stages: list[_Stage], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(stages)
    while waiting:
        for s in list(waiting):
            if s.proc.poll() is not None:
                raise RuntimeError(f"{s.name} exited {s.proc.returncode}:\n{s.tail()}")
            if _ASSIGNED.search(s.output()):
                waiting.remove(s)
        if time.monotonic() > deadline:
            raise RuntimeError(f"not subscribed after {timeout_s:g} s: {[s.name for s in waiting]}")
        time.sleep(0.1)


def _wait_rows(
    settings: Settings, stages: list[_Stage], n: int, started: float, timeout_s: float
) -> float:
    """When the DEP's ``events`` table first held ``n`` rows (to within ``_POLL_S``)."""
    with db.connect(settings, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
            now = time.monotonic()
            have = int(str(row[0])) if row else 0
            if have >= n:
                return now
            for s in stages:
                if s.proc.poll() is not None:
                    raise RuntimeError(f"{s.name} exited {s.proc.returncode}:\n{s.tail()}")
            if now - started > timeout_s:
                raise RuntimeError(f"only {have:,} of {n:,} events stored after {timeout_s:g} s")
            time.sleep(_POLL_S)


def _stop(stage: _Stage) -> int:
    """SIGTERM (the stage finishes its batch and leaves its group), then SIGKILL if it hangs."""
    if stage.proc.poll() is None:
        stage.proc.send_signal(signal.SIGTERM)
    try:
        return stage.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stage.proc.kill()
        return stage.proc.wait()
