"""The fault-injection run: a large stream through every stage as real processes while faults
are injected on a seeded schedule, then every table and topic checked against an independent
computation. ``python -m tests.chaos.driver --fulfillments 13000 --record docs/reliability.md``
is ``make chaos``; ``tests/chaos/test_chaos.py`` runs a small seeded version in ``make test``.

It starts its own Kafka broker and PostgreSQL (``da stack up`` in a work directory), because
restarting them is part of the schedule.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cli.sample import generate
from cli.stack import start_stack, stop_stack
from cli.stages import all_topics
from common import db
from common.codec import Codec
from common.events import FulfillmentEvent
from common.kafka import ensure_topics, producer_config
from common.settings import Settings
from common.topics import Topics
from common.transactional import EXIT_WEDGED
from dep import registry
from tests.chaos.faults import Chaos
from tests.e2e.pipeline import Stages
from tests.e2e.test_fulfillment_pipeline import COMMANDS, check_tables
from tests.kafka_read import read_topic
from tests.oracle import expected_tables

log = logging.getLogger("chaos")
POISON = {  # stage whose dead-letter topic must receive it -> how to make one
    "gep": lambda i: b"\x00not json at all " + str(i).encode(),
    "demux": lambda i: b"not avro " + str(i).encode(),
    "dep.fulfillment-state": lambda i: b"\xc3\x01" + b"\x00" * 8 + str(i).encode(),
}


@dataclass
class Report:
    raw_events: int = 0
    distinct_events: int = 0
    poison: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    unplanned_exits: dict[int, int] = field(default_factory=dict)
    stop_exits: dict[int, int] = field(default_factory=dict)
    lost: int = 0
    duplicates: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    table_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.duplicates == 0
            and not self.table_problems
            and self.dead_lettered == self.poison
        )


def make_input(seed: int, fulfillments: int) -> list[dict[str, str]]:
    """Sample events, out of order (shuffled in windows) with some sent twice."""
    rng = random.Random(seed)
    rows = [
        {k: str(v) for k, v in asdict(r).items()} for r in generate(seed=seed, count=fulfillments)
    ]
    for start in range(0, len(rows), 50):
        window = rows[start : start + 50]
        rng.shuffle(window)
        rows[start : start + 50] = window
    for i in sorted(rng.sample(range(len(rows)), len(rows) // 25), reverse=True):
        rows.insert(min(len(rows), i + rng.randrange(1, 200)), dict(rows[i]))
    return rows


def emit(
    settings: Settings, rows: list[dict[str, str]], rate: float, poison_every: int, report: Report
) -> None:
    """Produce the stream at ``rate`` events/s, poison among it; wait until all is acknowledged.
    Its messages wait out a broker restart in the producer (five minutes allowed)."""
    from confluent_kafka import Producer

    producer = Producer({**producer_config(settings), "message.timeout.ms": 300_000})
    topics = Topics(settings.namespace)
    poison_topic = {
        "gep": topics.ingest,
        "demux": topics.canonical,
        "dep.fulfillment-state": topics.sink_bucket("demux", "fulfillment"),
    }
    failed: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    started = time.monotonic()
    for n, row in enumerate(rows):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        producer.produce(
            topics.ingest,
            json.dumps(row).encode(),
            row["fulfillment_id"].encode(),
            headers=[("da-format", b"proctoring.csv")],
            on_delivery=delivered,
        )
        if n % poison_every == poison_every // 2:
            stage = list(POISON)[(n // poison_every) % len(POISON)]
            producer.produce(
                poison_topic[stage], POISON[stage](n), b"poison", on_delivery=delivered
            )
            report.poison[stage] = report.poison.get(stage, 0) + 1
        producer.poll(0)
    if producer.flush(300) or failed:
        raise RuntimeError(f"the input itself was not delivered: {failed[:3]}")


def run(
    workdir: Path,
    seed: int,
    fulfillments: int,
    rate: float,
    fault_every_s: float,
    converge_s: float = 240.0,
    min_faults: int = 0,
) -> Report:
    """``min_faults``: keep injecting after the stream ended until that many were injected."""
    report = Report()
    t0 = time.monotonic()
    stack_dir = workdir / "stack"
    info = start_stack(stack_dir)
    settings = Settings(
        kafka_bootstrap_servers=info.kafka_bootstrap_servers,
        database_url=info.database_url,
        namespace=f"chaos{uuid.uuid4().hex[:8]}",
        database_schema="chaos",
        partitions=6,
        batch_size=500,
        poll_timeout_s=0.2,
        io_timeout_s=10,
    )
    env = {
        "DA_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DA_DATABASE_URL": settings.database_url,
        "DA_NAMESPACE": settings.namespace,
        "DA_DATABASE_SCHEMA": settings.database_schema,
        "DA_BATCH_SIZE": "500",
        "DA_POLL_TIMEOUT_S": "0.2",
        "DA_IO_TIMEOUT_S": "10",
        "DA_LOG_LEVEL": "DEBUG",
    }
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DA_")}, **env}
    ensure_topics(settings, all_topics(settings))
    db.migrate(settings, registry.all_migrations())
    rows = make_input(seed, fulfillments)
    report.raw_events, report.distinct_events = len(rows), len({r["id"] for r in rows})
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    stages = Stages(env, workdir / "logs", COMMANDS)
    chaos = Chaos(stages, stack_dir, seed)
    chaos.start()
    try:
        emitter = threading.Thread(target=emit, args=(settings, rows, rate, 997, report))
        emitter.start()
        next_fault = time.monotonic() + fault_every_s
        while emitter.is_alive() or sum(chaos.injected.values()) < min_faults:
            chaos.supervise()
            if time.monotonic() >= next_fault:
                chaos.inject()
                next_fault = time.monotonic() + fault_every_s * chaos.rng.uniform(0.5, 1.5)
            time.sleep(0.2)
        emitter.join()
        chaos.scale_back()
        want = expected_tables(rows)
        deadline = time.monotonic() + converge_s
        while (problems := check_tables(settings, want)) and time.monotonic() < deadline:
            chaos.supervise()
            time.sleep(2)
        report.table_problems = problems
        _count_outputs(settings, rows, report)
    finally:
        chaos.supervise()  # as in scale_back: an exit of its own is not a failed stop
        exits = stages.stop_all()
        report.faults, report.unplanned_exits = dict(chaos.injected), dict(chaos.unplanned_exits)
        report.stop_exits = dict(Counter(exits.values()))
        report.seconds = round(time.monotonic() - t0, 1)
        # SIGTERM must end in 0, or in WEDGED: librdkafka hung in a transaction call (its open
        # issues 5456/5511) and the watchdog ended the process uncommitted, as documented.
        if set(exits.values()) - {0, EXIT_WEDGED}:
            report.table_problems.append(f"stages did not stop cleanly: {exits}")
        # A failed run keeps the broker's and the database's logs (and data) to look into.
        stop_stack(stack_dir, purge=report.passed)
    return report


def _count_outputs(settings: Settings, rows: list[dict[str, str]], report: Report) -> None:
    topics = Topics(settings.namespace)
    des = read_topic(
        settings, topics.sink("demux", "fulfillment.welcome"), expect=len(rows), timeout_s=180
    )
    codec = Codec()
    got = Counter(
        FulfillmentEvent.decode(codec, m.value()).event_id for m in des if m.key() != b"poison"
    )
    sent = Counter(r["id"] for r in rows)
    report.lost = sum(max(0, n - got[i]) for i, n in sent.items())
    report.duplicates = sum(max(0, n - sent[i]) for i, n in got.items())
    for stage, n in report.poison.items():
        letters = read_topic(settings, topics.dead_letter(stage), expect=n, linger_s=1)
        report.dead_lettered[stage] = len(letters)


def render(report: Report) -> str:
    faults = ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items()))
    return "\n".join(
        [
            "| figure | value |",
            "|---|---|",
            f"| raw events in (duplicates included) | {report.raw_events:,} |",
            f"| distinct events | {report.distinct_events:,} |",
            f"| faults injected | {faults} |",
            f"| unplanned exits restarted by the supervisor (status: count) | "
            f"{report.unplanned_exits} |",
            f"| exit status of the final SIGTERM stops (status: count) | {report.stop_exits} |",
            f"| poison messages (by stage) | {report.poison} |",
            f"| dead-lettered (by stage) | {report.dead_lettered} |",
            f"| events lost | {report.lost} |",
            f"| duplicates | {report.duplicates} |",
            f"| tables equal to the independent computation | "
            f"{'yes' if not report.table_problems else report.table_problems} |",
            f"| wall time | {report.seconds} s |",
            f"| verdict | {'PASS' if report.passed else 'FAIL'} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fulfillments", type=int, default=13_000)
    parser.add_argument("--rate", type=float, default=2_000)
    parser.add_argument("--fault-every", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(".da/chaos"))
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    shutil.rmtree(args.workdir, ignore_errors=True)
    report = run(args.workdir, args.seed, args.fulfillments, args.rate, args.fault_every)
    table = render(report)
    print(table)
    if args.record:
        record(args.record, args, table)
    raise SystemExit(0 if report.passed else 1)


def record(path: Path, args: argparse.Namespace, table: str) -> None:
    import platform

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    begin, end = "<!-- chaos:begin -->", "<!-- chaos:end -->"
    text = path.read_text() if path.is_file() else ""
    section = (
        f"{begin}\n## Latest `make chaos` run: {when}\n\n"
        f"`python -m tests.chaos.driver --fulfillments {args.fulfillments} --rate "
        f"{args.rate:g} --fault-every {args.fault_every:g} --seed {args.seed}` on "
        f"{os.cpu_count()} cores, {platform.platform()}\n\n{table}\n{end}"
    )
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
