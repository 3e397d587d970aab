"""``python -m bench.pipeline [--events N] [--reps R] [--record docs/benchmarks.md]``: run the
benchmark.

Per repetition (R, default 3, interleaved so that a change in the machine's load hits project
and ceiling alike):

1. Fresh namespaces and schemas: one for the stages, one for the bare programs' outputs, one for
   the pipeline end to end.
2. Produce N sample proctoring events to the stages' ingest topic (emit figure).
3. Each step and its ceiling, side by side, on the same input topics: the bare passthrough (the
   floor of any Kafka-to-Kafka stage); GEP and bare GEP; demux and bare demux; the DEP and two
   bare DEPs, one writing ``events`` only, one the DEP's three tables (``bench.bare``,
   ``bench.bare_dep``). Odd repetitions run the bare programs first.
4. The learning workload (a class's sessions: one raw message, several canonical events and
   DEs): GEP and demux alone, then each learning DEP alone on the DEs the demux wrote, each
   followed by a bare program storing as many of the same DEs (``bench.bare_learning``; always
   after the DEP, whose count it takes).
5. The three stages as ``da`` processes on the end-to-end namespace while the same events are
   produced as fast as possible.

Then once: the pipeline at a fixed ingest rate (``--rate``), for the latency of each event from
its ``produce()`` to its committed row. Everything created is dropped at the end; the table of
min / median / max over the repetitions is printed (and recorded).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

from psycopg import sql

from bench import bare, report, summary
from bench.e2e import run_latency, run_pipeline
from bench.ingest import learning_messages, produce, sample_messages
from bench.stage import DEP, LEARNING_DEPS, STAGES, measure_isolated
from cli.emit_input import Message
from cli.stages import all_topics
from common import db, stages
from common.kafka import ensure_topics, make_admin
from common.settings import Settings
from dep import registry

log = logging.getLogger("bench")
# Each stage and the bare programs measured beside it (the DEP: events only, and its three tables).
_PAIRS = (("gep", ("gep",)), ("demux", ("demux",)), (DEP, ("dep", "dep-tables")))


@dataclasses.dataclass(frozen=True)
class Options:
    events: int
    reps: int
    rate: float
    latency_events: int
    learning_students: int
    timeout_s: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="raw events (default 100000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--rate", type=float, default=5000.0, help="events/s of the latency run (default 5000)"
    )
    parser.add_argument(
        "--latency-events", type=int, default=0, help="events of the latency run (default: N)"
    )
    parser.add_argument(
        "--students", type=int, default=400, help="students of the learning workload (400)"
    )
    parser.add_argument(
        "--record", type=Path, metavar="FILE", help="write the figures into FILE's bench section"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up on a phase after this many seconds"
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.reps < 1 or args.rate <= 0:
        parser.error("--events and --reps must be at least 1, --rate positive")
    options = Options(
        args.events,
        args.reps,
        args.rate,
        args.latency_events or args.events,
        args.students,
        args.timeout,
    )
    # Our progress lines at INFO; the clients' own only when they warn.
    logging.basicConfig(level=logging.WARNING, format="bench: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)

    base = Settings.load()
    tag = uuid.uuid4().hex[:8]
    created: list[Settings] = []
    try:
        run = _run(base, tag, options, created)
    finally:
        _clean_up(created)
    print(summary.text(run))
    if args.record:
        command = (
            f"python -m bench.pipeline --events {args.events} --reps {args.reps}"
            f" --rate {args.rate:g}"
        )
        report.record(args.record, summary.markdown(run, report.machine(base), command))
        log.info("recorded in %s", args.record)
    return 0


def _space(base: Settings, created: list[Settings], name: str, topics: bool = True) -> Settings:
    s = dataclasses.replace(base, namespace=name, database_schema=name.replace("-", "_"))
    created.append(s)
    if topics:
        ensure_topics(s, all_topics(s))
    db.migrate(s, registry.all_migrations())
    return s


def _run(base: Settings, tag: str, o: Options, created: list[Settings]) -> summary.Run:
    log.info("generating %s sample events", f"{o.events:,}")
    messages, fulfillments = sample_messages(o.events)
    lessons = learning_messages(o.learning_students)
    run = summary.Run(base, len(messages), fulfillments, len(lessons))
    for rep in range(o.reps):
        log.info("repetition %d of %d (load average %s)", rep + 1, o.reps, _load())
        run.loads.append(os.getloadavg())
        figures = _repetition(base, f"bench{tag}r{rep}", rep, (messages, lessons), o, created)
        run.figures.append(figures)
    log.info("latency at %g events/s", o.rate)
    whole = _space(base, created, f"bench{tag}-lat")
    with tempfile.TemporaryDirectory(prefix="da-bench-") as workdir:
        run.latency, notes = run_latency(
            whole, messages[: o.latency_events], o.rate, Path(workdir), o.timeout_s
        )
    run.notes += notes
    run.loads.append(os.getloadavg())
    return run


def _repetition(
    base: Settings,
    name: str,
    rep: int,
    inputs: tuple[list[Message], list[Message]],
    o: Options,
    created: list[Settings],
) -> list[report.Figure]:
    messages, lessons = inputs
    n = len(messages)
    alone = _space(base, created, name)
    ceiling = _space(base, created, f"{name}-bare", topics=False)
    ensure_topics(ceiling, list(bare.needed_topics(ceiling)))
    figures = [produce(alone, messages, "emit (produce to ingest, like `da emit`)")]
    figures.append(bare.measure_isolated(ceiling, "passthrough", alone, n))
    for stage, kinds in _PAIRS:
        pair = [
            partial(measure_isolated, alone, stage, n, 30.0),
            *(partial(bare.measure_isolated, ceiling, kind, alone, n) for kind in kinds),
        ]
        for measure in pair[:: -1 if rep % 2 else 1]:
            figure = measure()
            log.info("  %s: %s events/s", figure.name, f"{figure.rate:,.0f}")
            figures.append(figure)

    learning = _space(base, created, f"{name}-learn")
    produce(learning, lessons, "emit learning")
    figures.append(measure_isolated(learning, "gep", len(lessons), label=summary.LEARNING_GEP))
    figures.append(
        measure_isolated(learning, "demux", 0, idle_stop_s=5.0, label=summary.LEARNING_DEMUX)
    )
    for dep in LEARNING_DEPS:  # each on every DE of its inputs, until idle; then its ceiling
        figure = measure_isolated(
            learning, dep, 0, idle_stop_s=5.0, label=summary.learning_dep(dep)
        )
        figures.append(figure)
        if figure.events:
            kind = f"learning-{dep}"
            figures.append(bare.measure_isolated(ceiling, kind, learning, figure.events))

    whole = _space(base, created, f"{name}-e2e")
    with tempfile.TemporaryDirectory(prefix="da-bench-") as workdir:
        started = time.monotonic()
        e2e, notes = run_pipeline(whole, messages, Path(workdir), o.timeout_s)
        log.info("  pipeline end to end: %.1f s", time.monotonic() - started)
    # A note rides as a figure of no events, so that the summary can tell which repetition.
    return figures + e2e + [report.Figure(summary.NOTE, 0, 0.0, note=n) for n in notes]


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _clean_up(created: list[Settings]) -> None:
    """Best effort: a failure here is reported, never hides the run's own error."""
    admin = make_admin(created[0]) if created else None
    for s in created:
        try:
            with db.connect(s, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(s.database_schema)
                    )
                )
            assert admin is not None
            groups = [s.group_id(stages.get(g).name) for g in STAGES]
            groups += [s.group_id(f"bare-{k}") for k in bare.KINDS]
            for future in admin.delete_consumer_groups(groups).values():
                try:
                    future.result()
                except Exception as exc:  # a group never created: nothing to delete
                    log.debug("consumer group: %s", exc)
            topics = set(all_topics(s)) | set(bare.needed_topics(s))
            existing = set(admin.list_topics(timeout=30).topics)
            for future in admin.delete_topics(sorted(topics & existing)).values():
                future.result()
        except Exception as exc:
            log.warning("clean-up of %s failed: %s", s.namespace, exc)


if __name__ == "__main__":
    sys.exit(main())
