"""``python -m bench.workflow [--commands N] [--round-trips K] [--record docs/benchmarks.md]``.

1. A fresh namespace and schema; GEP, demux and ``ous-lifecycle`` as ``da`` processes, waiting.
2. Throughput: N JSON commands (set-substate and set-flag over N/10 OUSs, each with a
   ``reply_to``) produced to the ingest topic; the clock runs from the first ``produce()`` until
   the N-th answer is read back from the answer topic (GEP → demux → DEP → outbox → answer).
3. Round trip: K ``da workflow set-state`` commands (new OUSs) one after the other, as the CLI sends
   them (``cli.workflow.send``): produce, then wait for the answer; p50 and p99.
4. Stop the processes, drop the schema, topics and groups; print the figures (and record them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.e2e import _da, stage_env
from cli.stages import all_topics
from cli.workflow import send
from common import db
from common.kafka import ensure_topics, make_admin, make_consumer, make_producer
from common.settings import Settings
from common.topics import Topics
from dep import registry

log = logging.getLogger("bench")
BEGIN = "<!-- bench-workflow:begin (written by `python -m bench.workflow --record`) -->"
END = "<!-- bench-workflow:end -->"
STAGES = (["gep", "run"], ["demux", "run"], ["dep", "run", "ous-lifecycle"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workflow", description=__doc__)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--record", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="bench: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    tag = uuid.uuid4().hex[:8]
    base = Settings.load()
    settings = dataclasses.replace(base, namespace=f"wf{tag}", database_schema=f"wf_{tag}")
    ensure_topics(settings, all_topics(settings))
    db.migrate(settings, registry.all_migrations())
    logs = Path(tempfile.mkdtemp(prefix="bench-workflow-"))
    procs = [
        subprocess.Popen(
            [*_da(), *cmd],
            env=stage_env(settings),
            stdout=(logs / f"{cmd[-1]}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for cmd in STAGES
    ]
    try:
        # Warm up: one answered command means every stage is assigned and running.
        send(settings, "uid://W0/X0/X0a", "set-substate", "Warm", timeout=120)
        rate = throughput(settings, args.commands)
        trips = [round_trip(settings, i) for i in range(args.round_trips)]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        _clean_up(settings)
    trips.sort()
    p50 = statistics.median(trips) * 1000
    p99 = trips[min(len(trips) - 1, int(len(trips) * 0.99))] * 1000
    text = (
        f"| commands through GEP → demux → ous-lifecycle, answers included | {rate:,.0f} /s "
        f"({args.commands:,} commands) |\n"
        f"| `da workflow set-state` round trip, p50 | {p50:.0f} ms |\n"
        f"| `da workflow set-state` round trip, p99 | {p99:.0f} ms "
        f"({args.round_trips} in a row) |\n"
    )
    print(text)
    if args.record:
        section = (
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with "
            f"`python -m bench.workflow --commands {args.commands} "
            f"--round-trips {args.round_trips}` (one instance of each stage; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs when it ended):\n\n"
            "| figure | value |\n|---|---|\n" + text
        )
        old = args.record.read_text() if args.record.exists() else "# Benchmarks\n"
        start, end = old.find(BEGIN), old.find(END)
        block = f"{BEGIN}\n{section}{END}\n"
        new = (
            old[:start] + block + old[end + len(END) + 1 :]
            if 0 <= start < end
            else old.rstrip("\n") + "\n\n## The OUS workflow\n\n" + block
        )
        args.record.write_text(new)
    return 0


def throughput(settings: Settings, n: int) -> float:
    topics = Topics(settings.namespace)
    reply_to = topics.reply_prefix + "sample"
    consumer = make_consumer(settings, f"bench-{uuid.uuid4().hex}")
    consumer.subscribe([reply_to])
    producer = make_producer(settings)
    start = time.monotonic()
    for i in range(n):
        uid = f"uid://B{i % max(1, n // 10)}/X1/X1a"
        op, value = ("set-substate", f"R{i}") if i % 2 else ("set-flag", f"f{i % 7}={i}")
        body = {"id": f"b{i}", "operation": op, "ousUID": uid, "value": value, "reply_to": reply_to}
        producer.produce(
            topics.ingest, json.dumps(body).encode(), uid.encode(), headers=[("da-format", b"xtss")]
        )
        producer.poll(0)
    producer.flush(60)
    seen: set[bytes | None] = set()
    deadline = time.monotonic() + 600
    while len(seen) < n and time.monotonic() < deadline:
        seen |= {m.key() for m in consumer.consume(1000, 0.5) if m.error() is None}
    elapsed = time.monotonic() - start
    consumer.close()
    if len(seen) < n:
        raise SystemExit(f"only {len(seen)} of {n} answers within the deadline")
    return n / elapsed


def round_trip(settings: Settings, i: int) -> float:
    start = time.monotonic()
    answer = send(settings, f"uid://R{i}/X1/X1a", "set-state", "ReadyForProcessing", timeout=60)
    if answer["status"] != 201:
        raise SystemExit(f"unexpected answer {answer}")
    return time.monotonic() - start


def _clean_up(settings: Settings) -> None:
    with db.connect(settings, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {settings.database_schema} CASCADE")
    admin = make_admin(settings)
    names = [
        t for t in admin.list_topics(timeout=30).topics if t.startswith(settings.namespace + ".")
    ]
    if names:
        for f in admin.delete_topics(names).values():
            f.result()


if __name__ == "__main__":
    sys.exit(main())
