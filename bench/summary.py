"""The repetitions of a run folded into one table: min / median / max of each measurement, its
CPU per event, peak memory, and its ratio to the bare ceiling measured beside it; then the
latency run and the issue's targets."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.e2e import WARMUP_S, Latency
from bench.report import Figure
from bench.stage import LEARNING_DEPS
from common.settings import Settings

LEARNING_GEP = "learning: GEP alone (raw messages)"
LEARNING_DEMUX = "learning: demux alone (canonical events)"
PIPELINE = "pipeline end to end (3 processes)"
NOTE = "note"
OLD_PIPELINE_RATE = 19_100.0  # events/s end to end before this work, quiet machine (issue 11)
GEP = "GEP alone (ingest -> canonical)"
DEMUX = "demux alone (canonical -> DE)"
DEP = "DEP fulfillment-state alone (DE -> PostgreSQL)"


def learning_dep(name: str) -> str:
    """The row of a learning DEP measured alone."""
    return f"learning: DEP {name} alone (its DEs)"


def learning_ceiling(name: str) -> str:
    """The row of the bare program storing a learning DEP's DEs (``bench.bare_learning``)."""
    return f"learning: bare copy of {name}'s DEs"


# Each measurement and the ceiling it is held to (the bare program of the same step).
CEILINGS = {
    GEP: "bare gep",
    DEMUX: "bare demux",
    # Like with like: the same three tables (the events-only ceiling is judged too, below).
    DEP: "bare dep (3 tables)",
    "bare dep (3 tables)": "bare dep",
    "bare gep": "bare passthrough",
    "bare demux": "bare passthrough",
    **{learning_dep(d): learning_ceiling(d) for d in LEARNING_DEPS},
}
TARGETS = (  # measurement, ceiling, goal
    (GEP, "bare gep", 0.9),
    (DEMUX, "bare demux", 0.8),
    (DEP, "bare dep (3 tables)", 0.7),
    (DEP, "bare dep", 0.7),
)
STAGE_RSS_MIB = 150
STAGE_CPU_US = 30.0
P99_MS = 500.0


@dataclass
class Run:
    settings: Settings
    events: int
    fulfillments: int
    learning_messages: int
    figures: list[list[Figure]] = field(default_factory=list)  # one list per repetition
    loads: list[tuple[float, float, float]] = field(default_factory=list)
    latency: Latency | None = None
    notes: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Row:
    name: str
    rates: list[float]
    cpu_us: float | None  # median CPU per event
    cores: float | None  # median share of one core
    kafka: float | None
    postgres: float | None
    rest: float | None
    rss_mib: float | None  # highest of the repetitions
    ratio: float | None  # median of the per-repetition ratios to the ceiling


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ceiling_of(name: str) -> str:
    """The measurement ``name`` is held to in the table ("" for none)."""
    return CEILINGS.get(name, "")


def _by_rep(run: Run) -> list[dict[str, Figure]]:
    return [{f.name: f for f in rep} for rep in run.figures]


def _ratio(by_rep: list[dict[str, Figure]], name: str, ceiling: str) -> float | None:
    """The median of each repetition's own ratio of ``name`` to ``ceiling``."""
    return _median(
        [
            r[name].rate / r[ceiling].rate
            for r in by_rep
            if name in r and ceiling in r and r[ceiling].rate
        ]
    )


def rows(run: Run) -> list[Row]:
    names = list(dict.fromkeys(f.name for rep in run.figures for f in rep if f.name != NOTE))
    by_rep = _by_rep(run)
    out = []
    for name in names:
        figs = [r[name] for r in by_rep if name in r]

        def per_event(f: Figure) -> float | None:
            count = f.events or run.events  # a stage process of the pipeline: its share
            return None if f.cpu_s is None else f.cpu_s / count * 1e6

        def services(
            pick: Callable[[Figure], float | None], figs: list[Figure] = figs
        ) -> float | None:
            return _median([pick(f) for f in figs])

        rss = [f.peak_rss_kib / 1024 for f in figs if f.peak_rss_kib is not None]
        out.append(
            Row(
                name,
                [f.rate for f in figs if f.events],
                _median([per_event(f) for f in figs]),
                services(lambda f: f.cpu_share),
                services(lambda f: f.services.kafka if f.services else None),
                services(lambda f: f.services.postgres if f.services else None),
                services(lambda f: f.services.rest if f.services else None),
                max(rss) if rss else None,
                _ratio(by_rep, name, ceiling_of(name)),
            )
        )
    return out


HEAD = (
    "measurement",
    "events/s min",
    "median",
    "max",
    "CPU µs/event",
    "CPU",
    "Kafka CPU",
    "PG CPU",
    "rest CPU",
    "peak RSS MiB",
    "ratio to ceiling",
)


def _pct(v: float | None) -> str:
    # A database backend that exited within the interval takes its CPU with it: never below 0.
    return "" if v is None else f"{max(v, 0.0) * 100:.0f}%"


def _cells(r: Row) -> tuple[str, ...]:
    rates = sorted(r.rates)
    spread = (
        (f"{rates[0]:,.0f}", f"{statistics.median(rates):,.0f}", f"{rates[-1]:,.0f}")
        if rates
        else ("", "", "")
    )
    ceiling = ceiling_of(r.name)
    return (
        r.name,
        *spread,
        "" if r.cpu_us is None else f"{r.cpu_us:.1f}",
        _pct(r.cores),
        _pct(r.kafka),
        _pct(r.postgres),
        _pct(r.rest),
        "" if r.rss_mib is None else f"{r.rss_mib:.0f}",
        "" if r.ratio is None else f"{r.ratio:.2f} of {ceiling}",
    )


def _loads(run: Run) -> str:
    return "; ".join(", ".join(f"{x:.1f}" for x in load) for load in run.loads)


def _notes(run: Run) -> list[str]:
    notes = [
        f"repetition {i + 1}: {f.name}: {f.note}"
        for i, rep in enumerate(run.figures)
        for f in rep
        if f.note and not f.name.startswith("pipeline")
    ]
    return notes + run.notes


def _latency(run: Run) -> list[str]:
    lat = run.latency
    if lat is None:
        return []
    asked = lat.events + lat.startup_events
    return [
        f"Latency ingest -> committed row, {asked:,} events asked at {lat.rate:,.0f}/s"
        f" (produced at {lat.achieved:,.0f}/s): p50 {lat.p50_ms:.0f} ms, p99 {lat.p99_ms:.0f} ms,"
        f" max {lat.max_ms:.0f} ms over the {lat.events:,} produced after the first"
        f" {WARMUP_S:g} s; those {lat.startup_events:,} of the start-up (cold clients) took up to"
        f" {lat.startup_max_ms:.0f} ms; the three stages used {lat.stage_cpu_us:.1f} µs CPU/event."
    ]


def targets(run: Run) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the issue's goals this run can judge."""
    found = {r.name: r for r in rows(run)}
    by_rep = _by_rep(run)
    out = []
    for name, ceiling, goal in TARGETS:
        got = _ratio(by_rep, name, ceiling)
        if got is not None:
            out.append((f"{name} >= {goal} of {ceiling}", f"{got:.2f}", got >= goal))
    pipe = found.get(PIPELINE)
    if pipe is not None and pipe.rates:
        rate = statistics.median(pipe.rates)
        goal = 2 * OLD_PIPELINE_RATE
        out.append((f"end to end >= {goal:,.0f} events/s", f"{rate:,.0f}", rate >= goal))
    stage_cpu = sum(r.cpu_us or 0.0 for n, r in found.items() if n.startswith("  process"))
    if stage_cpu:
        out.append(
            (
                f"end to end <= {STAGE_CPU_US:g} µs of stage CPU per event",
                f"{stage_cpu:.1f}",
                stage_cpu <= STAGE_CPU_US,
            )
        )
    if run.latency is not None:
        p99 = run.latency.p99_ms
        out.append(
            (f"p99 <= {P99_MS:g} ms at {run.latency.rate:,.0f}/s", f"{p99:.0f}", p99 <= P99_MS)
        )
    stages = [r for r in found.values() if r.rss_mib is not None and not r.name.startswith("bare")]
    if stages:
        worst = max(stages, key=lambda r: r.rss_mib or 0.0)
        rss = worst.rss_mib or 0.0
        out.append(
            (
                f"<= {STAGE_RSS_MIB} MiB RSS per stage",
                f"{rss:.0f} ({worst.name.strip()})",
                rss <= STAGE_RSS_MIB,
            )
        )
    return out


def text(run: Run) -> str:
    body = [_cells(r) for r in rows(run)]
    widths = [max(len(r[i]) for r in [HEAD, *body]) for i in range(len(HEAD))]
    right = widths[1:]
    lines = [
        "  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], right, strict=True))])
        for r in [HEAD, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"load average (1, 5, 15 min) at each repetition's start: {_loads(run)}"]
    lines += _latency(run)
    lines += [f"{'met' if ok else 'MISSED'}: {goal}: {got}" for goal, got, ok in targets(run)]
    return "\n".join(lines + [f"note: {n}" for n in _notes(run)])


def markdown(run: Run, machine_rows: list[tuple[str, str]], command: str) -> str:
    s = run.settings
    out = [
        f"## Latest run: {run.started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine_rows),
        f"| load average (1, 5, 15 min) at each repetition's start, then at the end | "
        f"{_loads(run)} |",
        "",
        f"Input: {run.events:,} raw proctoring events of {run.fulfillments:,} fulfillments "
        "(`cli.sample.fulfillments.generate`, seed 42, the first events in time order); "
        f"the learning workload: {run.learning_messages:,} raw messages of "
        "`da sample learning`. Settings: "
        f"`DA_BATCH_SIZE={s.batch_size}`, `DA_PARTITIONS={s.partitions}` (every topic), "
        f"`DA_POLL_TIMEOUT_S={s.poll_timeout_s:g}`, `DA_BATCH_LINGER_S={s.batch_linger_s:g}`, "
        "replication factor "
        f"{s.replication_factor}. {len(run.figures)} repetitions, interleaved.",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|---" + "|--:" * (len(HEAD) - 2) + "|---|",
        *("| " + " | ".join(_cells(r)) + " |" for r in rows(run)),
        "",
        *(f"{line}" for line in _latency(run)),
        "",
        "| target (issue 11) | measured | |",
        "|---|--:|---|",
        *(f"| {goal} | {got} | {'met' if ok else 'missed'} |" for goal, got, ok in targets(run)),
        "",
        *(f"- {n}" for n in _notes(run)),
    ]
    return "\n".join(out).rstrip() + "\n"
