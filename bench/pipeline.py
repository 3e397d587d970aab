"""``python -m bench.pipeline [--events N] [--record docs/benchmarks.md]``: run the benchmark.

1. Fresh namespaces and schemas: one for the stages alone, one for the pipeline end to end.
2. Generate N sample events; produce them to the first namespace's ingest topic (emit figure).
3. GEP, demux and the DEP each alone, one after the other, each on its predecessor's output.
4. The three as ``da`` processes on the second namespace while the same events are produced.
5. Drop the schemas, topics and consumer groups; print the table (and record it).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

from psycopg import sql

from bench import report
from bench.e2e import run_pipeline
from bench.ingest import produce, sample_messages
from bench.stage import STAGES, measure_isolated
from cli.stages import all_topics
from common import db, stages
from common.kafka import ensure_topics, make_admin
from common.settings import Settings
from dep import registry

log = logging.getLogger("bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="raw events (default 100000)")
    parser.add_argument(
        "--record", type=Path, metavar="FILE", help="write the figures into FILE's bench section"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up on a phase after this many seconds"
    )
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    # Our progress lines at INFO; the clients' own only when they warn.
    logging.basicConfig(level=logging.WARNING, format="bench: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)

    base = Settings.load()
    tag = uuid.uuid4().hex[:8]
    alone = dataclasses.replace(base, namespace=f"bench{tag}", database_schema=f"bench_{tag}")
    whole = dataclasses.replace(
        base, namespace=f"bench{tag}-e2e", database_schema=f"bench_{tag}_e2e"
    )
    log.info("namespaces %s and %s", alone.namespace, whole.namespace)
    try:
        run = _run(alone, whole, args.events, args.timeout)
    finally:
        _clean_up(alone, whole)
    print(report.text_table(run))
    if args.record:
        command = f"python -m bench.pipeline --events {args.events}"
        report.record(args.record, report.markdown(run, report.machine(base), command))
        log.info("recorded in %s", args.record)
    return 0


def _run(alone: Settings, whole: Settings, n: int, timeout_s: float) -> report.Run:
    for s in (alone, whole):
        ensure_topics(s, all_topics(s))
        db.migrate(s, registry.all_migrations())
    log.info("generating %s sample events", f"{n:,}")
    messages, fulfillments = sample_messages(n)
    run = report.Run(alone, len(messages), fulfillments)

    log.info("emit: producing to %s", alone.namespace)
    run.figures.append(produce(alone, messages, "emit (produce to ingest, like `da emit`)"))
    for stage in STAGES:
        log.info("%s alone", stage)
        figure = measure_isolated(alone, stage, n, idle_stop_s=30.0)
        run.figures.append(figure)
        log.info("  %s events/s", f"{figure.rate:,.0f}")
    stored = _count_events(alone)
    if stored != n:
        run.notes.append(f"the DEP stored {stored:,} distinct events of {n:,} (stages alone)")

    log.info("pipeline: three `da` processes on %s", whole.namespace)
    with tempfile.TemporaryDirectory(prefix="da-bench-") as workdir:
        started = time.monotonic()
        figures, notes = run_pipeline(whole, messages, Path(workdir), timeout_s)
        log.info("  done in %.1f s", time.monotonic() - started)
    run.figures += figures
    run.notes += notes
    return run


def _count_events(settings: Settings) -> int:
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(str(row[0])) if row else 0


def _clean_up(*runs: Settings) -> None:
    """Best effort: a failure here is reported, never hides the run's own error."""
    for s in runs:
        try:
            with db.connect(s, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(s.database_schema)
                    )
                )
            admin = make_admin(s)
            groups = [s.group_id(stages.get(g).name) for g in STAGES]
            for future in admin.delete_consumer_groups(groups).values():
                try:
                    future.result()
                except Exception as exc:  # a group never created: nothing to delete
                    log.debug("consumer group: %s", exc)
            for future in admin.delete_topics(all_topics(s)).values():
                future.result()
        except Exception as exc:
            log.warning("clean-up of %s failed: %s", s.namespace, exc)


if __name__ == "__main__":
    sys.exit(main())
