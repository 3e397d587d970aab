"""What a chaos run found, as figures: ``render`` makes the table ``make chaos`` prints, and
``record`` writes it into ``docs/reliability.md`` between its markers."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos.mixed import DOMAINS


@dataclass
class Report:
    raw_events: dict[str, int] = field(default_factory=dict)  # by domain, duplicates included
    distinct_events: dict[str, int] = field(default_factory=dict)
    learning_des: int = 0  # DEs on demux's learning topics
    ous_states: dict[str, int] = field(default_factory=dict)  # OUSs by final life-cycle state
    most_parked: int = 0  # learning scores waiting for metadata, the most seen at once
    parked_ever: int = 0  # rows ever inserted into the parking table (PostgreSQL's statistics)
    poison_kinds: dict[str, int] = field(default_factory=dict)  # poison sent, by class
    poison: dict[str, int] = field(default_factory=dict)  # "stage: reason" -> dead letters due
    faults: dict[str, int] = field(default_factory=dict)
    unplanned_exits: dict[int, int] = field(default_factory=dict)  # exit status -> count
    stop_exits: dict[int, int] = field(default_factory=dict)  # of the final stops
    lost: dict[str, int] = field(default_factory=dict)  # by domain
    duplicates: dict[str, int] = field(default_factory=dict)
    dead_lettered: dict[str, int] = field(default_factory=dict)  # "stage: reason" -> found
    table_problems: list[str] = field(default_factory=list)
    topic_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stream_s: float = 0.0  # from the first send until every message of the stream was acknowledged
    faults_s: float = 0.0  # from the first send until the last fault was over
    cpu_burners: int = 0  # busy-loop processes run alongside on purpose
    load_samples: list[float] = field(default_factory=list)  # 1-minute load average, each second
    brokers: int = 1  # Kafka brokers: 1, or a cluster of 3 (replication factor 3, 2 in sync)
    recovery: dict[str, list[float]] = field(default_factory=dict)  # "what" -> seconds, each time

    @property
    def passed(self) -> bool:
        return (
            sum(self.lost.values()) == 0
            and sum(self.duplicates.values()) == 0
            and set(self.lost) == set(self.duplicates) == set(DOMAINS)
            and not self.table_problems
            and not self.topic_problems
            and self.dead_lettered == self.poison
        )


def _by_domain(figures: dict[str, int]) -> str:
    parts = ", ".join(
        f"{d} {figures[d]:,}" if d in figures else f"{d} not counted" for d in DOMAINS
    )
    return f"{sum(figures.values()):,} ({parts})"


def _load(report: Report) -> str:
    samples = report.load_samples or [0.0]
    return (
        f"{report.cpu_burners} CPU busy-loops added; 1-min load average "
        f"mean {sum(samples) / len(samples):.1f}, max {max(samples):.1f} "
        f"on {os.cpu_count()} cores"
    )


def _sorted(figures: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(figures.items())) or "none"


def _brokers(report: Report) -> str:
    if report.brokers == 1:
        return "1 (replication factor 1)"
    return f"{report.brokers} (KRaft, replication factor {report.brokers}, min.insync.replicas 2)"


def _recovery(report: Report) -> str:
    """Per kind of recovery: how many, the median and the longest, in seconds."""
    shown = []
    for what, seconds in sorted(report.recovery.items()):
        ordered = sorted(seconds)
        median = ordered[len(ordered) // 2]
        shown.append(f"{what}: {len(ordered)}x, median {median:g}, max {ordered[-1]:g}")
    return "; ".join(shown) or "none"


def render(report: Report) -> str:
    faults = ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items()))
    found = "as due" if report.dead_lettered == report.poison else _sorted(report.dead_lettered)
    return "\n".join(
        [
            "| figure | value |",
            "|---|---|",
            f"| raw events in (duplicates included) | {_by_domain(report.raw_events)} |",
            f"| distinct events | {_by_domain(report.distinct_events)} |",
            f"| learning DEs on demux's topics | {report.learning_des:,} |",
            f"| learning scores parked at once, at most | {report.most_parked:,} |",
            f"| OUSs by final life-cycle state (the oracle's) | {_sorted(report.ous_states)} |",
            f"| Kafka brokers | {_brokers(report)} |",
            f"| faults injected (by kind) | {faults} |",
            f"| recovery (s) | {_recovery(report)} |",
            f"| unplanned exits restarted by the supervisor (status: count) | "
            f"{report.unplanned_exits} |",
            f"| exit status of the final SIGTERM stops (status: count) | {report.stop_exits} |",
            f"| poison messages sent (by class) | {_sorted(report.poison_kinds)} |",
            f"| dead letters due (stage: reason) | {_sorted(report.poison)} |",
            f"| dead letters found (stage: reason) | {found} |",
            f"| events lost (learning: DEs; workflow: commands logged) | "
            f"{_by_domain(report.lost)} |",
            f"| duplicates (learning: DEs; workflow: commands logged) | "
            f"{_by_domain(report.duplicates)} |",
            f"| tables equal to the independent computation | "
            f"{'yes' if not report.table_problems else report.table_problems} |",
            f"| learning DE topics equal to the oracle | "
            f"{'yes' if not report.topic_problems else report.topic_problems} |",
            f"| machine load | {_load(report)} |",
            f"| wall time (stream sent and acknowledged; faults over) | {report.seconds} s "
            f"({report.stream_s} s; {report.faults_s} s) |",
            f"| verdict | {'PASS' if report.passed else 'FAIL'} |",
        ]
    )


RUNS_HEADER = (
    "| when (UTC) | arguments | faults | machine load | lost | duplicates | table problems "
    "| wall time | verdict |\n|---|---|---|---|---|---|---|---|---|"
)


def record(path: Path, arguments: str, table: str, report: Report) -> None:
    """The run's table replaces the latest one; a one-line summary is added to the list of
    recorded runs, so runs with different seeds and loads stay side by side."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = path.read_text() if path.is_file() else ""
    section = (
        f"## Latest `make chaos` run: {when}\n\n"
        f"`python -m tests.chaos.driver {arguments}` on "
        f"{os.cpu_count()} cores, {platform.platform()}\n\n{table}"
    )
    text = _replace(text, "chaos", section)
    faults = ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items()))
    row = (
        f"| {when[:-4]} | `{arguments}` | {faults} | {_load(report)} "
        f"| {sum(report.lost.values()):,} | {sum(report.duplicates.values()):,} "
        f"| {len(report.table_problems) + len(report.topic_problems)} | {report.seconds} s "
        f"| {'PASS' if report.passed else 'FAIL'} |"
    )
    runs = _between(text, "chaos-runs") or RUNS_HEADER
    text = _replace(text, "chaos-runs", f"{runs}\n{row}")
    path.write_text(text)


def _between(text: str, name: str) -> str | None:
    begin, end = f"<!-- {name}:begin -->\n", f"\n<!-- {name}:end -->"
    if begin in text and end in text:
        return text[text.index(begin) + len(begin) : text.index(end)]
    return None


def _replace(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->\n", f"\n<!-- {name}:end -->"
    block = f"{begin}{body}{end}"
    if begin in text and end in text:
        return text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    return text.rstrip() + "\n\n" + block + "\n"
