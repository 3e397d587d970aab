"""Where the CPU went: the machine, the local stack's Kafka broker and PostgreSQL, one process.

Read from ``/proc`` (Linux). The broker and the database are found through the pid files
``da stack up`` keeps, and only when the settings point at that stack; elsewhere their share is
unknown and shows as empty.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from common.settings import Settings
from common.stack_paths import read_env_file, stack_file, state_dir

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """CPU seconds used since boot: by the whole machine (all cores), the broker, the database."""

    machine: float
    kafka: float | None
    postgres: float | None


@dataclass(frozen=True)
class Share:
    """CPU over an interval, in cores (1.0 = one core busy the whole time)."""

    kafka: float | None
    postgres: float | None
    rest: float  # everything else: other processes on the machine, the kernel


def cpu_s(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def peak_rss_kib(pid: int | str = "self") -> int | None:
    """The resident-set high-water mark of ``pid`` (``VmHWM``), in KiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s*(\d+) kB", status, re.M)
    return int(found.group(1)) if found else None


def usage(settings: Settings) -> Usage:
    line = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in line]
    busy = (sum(values[:8]) - values[3] - values[4]) / _TICK  # without idle and iowait
    kafka, postgres = _stack_pids(settings)
    return Usage(
        busy,
        _sum_cpu([kafka]) if kafka else None,
        _sum_cpu([postgres, *_children(postgres)]) if postgres else None,
    )


def share(before: Usage, after: Usage, seconds: float, measured_cpu_s: float) -> Share:
    """How many cores the broker, the database and everything else (apart from the
    ``measured_cpu_s`` of the processes measured) used between two readings."""

    def delta(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    kafka = delta(before.kafka, after.kafka)
    postgres = delta(before.postgres, after.postgres)
    rest = after.machine - before.machine - measured_cpu_s - (kafka or 0.0) - (postgres or 0.0)
    cores = max(seconds, 1e-9)
    return Share(
        None if kafka is None else kafka / cores,
        None if postgres is None else postgres / cores,
        max(0.0, rest) / cores,
    )


def _stack_pids(settings: Settings) -> tuple[int | None, int | None]:
    stack = read_env_file(stack_file())
    if stack.get("DA_KAFKA_BOOTSTRAP_SERVERS") != settings.kafka_bootstrap_servers:
        return None, None
    kafka = _pid_in(state_dir() / "kafka" / "kafka.pid")
    postgres = None
    if stack.get("DA_DATABASE_URL") == settings.database_url:
        postgres = _pid_in(state_dir() / "pg" / "data" / "postmaster.pid")
    return kafka, postgres


def _pid_in(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def _sum_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        # A backend that exited meanwhile: its time is lost, a slight undercount.
        with contextlib.suppress(OSError):
            total += cpu_s(pid)
    return total
