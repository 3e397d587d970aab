"""A measured figure, the machine it was measured on, and the recording of a section into a
document (the tables themselves: ``bench.summary``)."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
import psycopg

from bench.proc import Share
from common import db
from common.settings import Settings

BEGIN = "<!-- bench:begin (written by `python -m bench.pipeline --record`) -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Figure:
    """One measured interval: ``events`` handled in ``seconds`` of wall time (``events`` 0: a
    process's share of an interval counted in another figure, shown for its CPU and memory)."""

    name: str
    events: int
    seconds: float
    # CPU the measured process spent in the interval (all its threads); None: not measured.
    cpu_s: float | None = None
    peak_rss_kib: int | None = None
    # Meanwhile: the broker, the database and the rest of the machine.
    services: Share | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_share(self) -> float | None:
        """Share of one core the process used while measured (1.0 = one core busy)."""
        if self.cpu_s is None or self.seconds <= 0:
            return None
        return self.cpu_s / self.seconds


def machine(settings: Settings) -> list[tuple[str, str]]:
    """What the figures depend on, as (label, value) rows."""
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = _read("/proc/meminfo")
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    pg_version = str(row[0]) if row else "unknown"
    return [
        ("CPU", f"{os.cpu_count()} cores, {model.group(1).strip() if model else 'unknown'}"),
        ("RAM", f"{int(mem.group(1)) / 1024**2:.1f} GiB" if mem else "unknown"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        (
            "confluent-kafka / librdkafka",
            f"{confluent_kafka.__version__} / {confluent_kafka.libversion()[0]}",
        ),
        ("psycopg / libpq", f"{psycopg.__version__} / {psycopg.pq.version()}"),
        ("PostgreSQL", pg_version),
        ("Kafka", _kafka_version()),
    ]


def _kafka_version() -> str:
    # The client API does not tell a broker's release; the local stack pins one.
    try:
        from cli.stack.kafka import KAFKA_VERSION
    except ImportError:
        return "unknown"
    return f"{KAFKA_VERSION} (the version `da stack up` runs)"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def record(path: Path, section: str, begin: str = BEGIN, end_mark: str = END) -> None:
    """Replace the section of ``path`` between the markers (append it when the file has none)."""
    block = f"{begin}\n{section}{end_mark}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start, end = text.find(begin), text.find(end_mark)
    if start >= 0 and end > start:
        rest = text[end + len(end_mark) :].lstrip("\n")
        text = text[:start] + block + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
