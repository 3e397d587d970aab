"""The fault-injection run: a large mixed stream (proctoring and learning, ``tests.chaos.mixed``)
through GEP, demux and every DEP of both domains as real processes while faults are injected on a
seeded schedule, then every table and DE topic checked against the independent computations
(``tests.oracle``, ``tests.learning_oracle``). ``make chaos`` runs it large and records its
figures; ``tests/chaos/test_chaos.py`` runs a small seeded version in ``make test``.

It starts its own Kafka broker (or, with ``--brokers 3``, a three-broker KRaft cluster with every
topic on all three, two in sync) and PostgreSQL (``da stack up`` in a work directory), because
restarting them is part of the schedule.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from cli.schemas import codec_for
from cli.stack.control import start_stack, stop_stack
from cli.stages import all_topics
from common import db
from common.deadletter import H_REASON, header
from common.events import FulfillmentEvent
from common.kafka import ensure_topics, producer_config
from common.settings import Settings
from common.topics import Topics
from common.wedge import EXIT_WEDGED
from dep import registry
from tests import learning_check
from tests.chaos import converge, poison
from tests.chaos.faults import Chaos, cpu_burners
from tests.chaos.mixed import COMMANDS, DOMAINS, Mix, Stream, make_stream
from tests.chaos.report import Report, record, render
from tests.e2e.pipeline import Stages
from tests.e2e.test_fulfillment_pipeline import check_tables
from tests.kafka_read import read_topic
from tests.learning_oracle import expected
from tests.oracle import expected_tables
from tests.ous_oracle import expected as ous_expected
from tests.workflow_check import check_tables as check_workflow
from tests.workflow_check import logged_commands

log = logging.getLogger("chaos")


def emit(
    settings: Settings,
    stream: Stream,
    rate: float,
    poison_every: int,
    report: Report,
    poisoned: Counter[str],
) -> None:
    """Produce the stream at ``rate`` events/s, poison among it (every class at every stage in
    turn); wait until all is acknowledged. Its messages wait out a broker restart in the producer
    (five minutes allowed). ``poisoned`` counts the poison put on each topic."""
    from confluent_kafka import Producer

    producer = Producer({**producer_config(settings), "message.timeout.ms": 300_000})
    topics = Topics(settings.namespace)
    running = [c[2] for c in COMMANDS.values() if c[0] == "dep"]
    targets = poison.targets(topics, running, settings.max_message_bytes)
    failed: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    def send(topic: str, value: bytes, key: bytes | None, headers: Any) -> None:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=delivered)
                return
            except BufferError:
                # The client's queue is full (a broker away holds acknowledgements back, and a
                # million-event stream outruns the queue): let it deliver some, then again.
                producer.poll(0.1)

    started = time.monotonic()
    for n, (_, m) in enumerate(stream.messages):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        send(topics.ingest, m.value, m.key, m.headers)
        if n % poison_every == poison_every // 2:
            target = targets[(n // poison_every) % len(targets)]
            send(target.topic, target.body(n), learning_check.POISON_KEY, target.headers)
            poisoned[target.topic] += 1
            report.poison_kinds[target.kind] = report.poison_kinds.get(target.kind, 0) + 1
            for stage, reason in target.letters:
                due = f"{stage}: {reason}"
                report.poison[due] = report.poison.get(due, 0) + 1
        producer.poll(0)
    if producer.flush(300) or failed:
        raise RuntimeError(f"the input itself was not delivered: {failed[:3]}")


def _noting_failure(failed: list[BaseException], call: Any, *args: Any) -> None:
    try:
        call(*args)
    except BaseException as exc:
        failed.append(exc)
        raise


def _check_sender(failed: list[BaseException]) -> None:
    # A stream cut short would be judged as events lost, hours later: end the run now.
    if failed:
        raise RuntimeError(f"sending the stream failed: {failed[0]!r}") from failed[0]


def run(
    workdir: Path,
    seed: int,
    mix: Mix,
    rate: float,
    fault_every_s: float,
    still_s: float = 300.0,
    min_faults: int = 0,
    poison_every: int = 997,
    load: int = 0,
    brokers: int = 1,
) -> Report:
    """``min_faults``: keep injecting after the stream ended until that many were injected.
    ``load``: CPU busy-loop processes kept running alongside, for a deliberately busy machine.
    ``brokers``: 1, or 3 for a cluster (and its broker faults)."""
    with cpu_burners(load):
        report = _run(
            workdir, seed, mix, rate, fault_every_s, still_s, min_faults, poison_every, brokers
        )
    report.cpu_burners = load
    return report


def _run(
    workdir: Path,
    seed: int,
    mix: Mix,
    rate: float,
    fault_every_s: float,
    still_s: float,
    min_faults: int,
    poison_every: int,
    brokers: int,
) -> Report:
    report = Report(brokers=brokers)
    t0 = time.monotonic()
    stack_dir = workdir / "stack"
    info = start_stack(stack_dir, brokers)
    # On a cluster a leader lost with its broker moves only once the controller has fenced the
    # broker (~9 s): the deployed I/O timeout, as the cluster tests have it.
    io_timeout_s = 10 if brokers == 1 else 30
    settings = Settings(
        kafka_bootstrap_servers=info.kafka_bootstrap_servers,
        database_url=info.database_url,
        schema_registry_url=info.schema_registry_url,
        namespace=f"chaos{uuid.uuid4().hex[:8]}",
        database_schema="chaos",
        partitions=6,
        batch_size=500,
        poll_timeout_s=0.2,
        io_timeout_s=io_timeout_s,
        replication_factor=info.replication_factor,
    )
    env = {
        "DA_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DA_DATABASE_URL": settings.database_url,
        "DA_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "DA_NAMESPACE": settings.namespace,
        "DA_DATABASE_SCHEMA": settings.database_schema,
        "DA_BATCH_SIZE": "500",
        "DA_POLL_TIMEOUT_S": "0.2",
        "DA_IO_TIMEOUT_S": str(io_timeout_s),
        "DA_REPLICATION_FACTOR": str(info.replication_factor),
        "DA_LOG_LEVEL": "DEBUG",
        # The poison goes straight onto the DE topics at the stream's pace: while demux is down
        # for minutes a DEP's backlog is mostly poison, and a DEP started there met the
        # dead-letter limit (100 invalid of its first 132 events) and stopped with status 1.
        # That is the limit doing its job (tests/unit/test_transactional.py among others);
        # here it would only cut the run short.
        "DA_DEAD_LETTER_MAX_RATIO": "1",
    }
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DA_")}, **env}
    ensure_topics(settings, all_topics(settings))
    db.migrate(settings, registry.all_migrations())
    stream = make_stream(seed, mix)
    report.raw_events = {d: stream.count(d) for d in DOMAINS}
    report.distinct_events = {d: stream.count(d, distinct=True) for d in DOMAINS}
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    stages = Stages(env, workdir / "logs", COMMANDS)
    chaos = Chaos(stages, stack_dir, seed, brokers, settings.namespace)
    if brokers > 1:
        # `ensure_topics` returns once each partition's leader serves it; the followers may
        # still be making their replicas: the faults start on a steady cluster, as they would on
        # a deployed one.
        report.recovery["topics created: replicas in sync"] = [round(chaos.cluster.in_sync(), 1)]
    chaos.start()
    poisoned: Counter[str] = Counter()
    watching = threading.Event()
    try:
        threading.Thread(target=_watch, args=(settings, report, watching), daemon=True).start()
        failed: list[BaseException] = []
        emitter = threading.Thread(
            # a daemon: a run that fails half way ends, not waits for the producer's flush
            target=_noting_failure,
            args=(failed, emit, settings, stream, rate, poison_every, report, poisoned),
            daemon=True,
        )
        emitter.start()
        began = time.monotonic()
        next_fault = began + fault_every_s
        while emitter.is_alive() or sum(chaos.injected.values()) < min_faults:
            _check_sender(failed)
            chaos.supervise()
            if time.monotonic() >= next_fault:
                chaos.inject()
                next_fault = time.monotonic() + fault_every_s * chaos.rng.uniform(0.5, 1.5)
            if not emitter.is_alive() and not report.stream_s:
                report.stream_s = round(time.monotonic() - began, 1)
            time.sleep(0.2)
        emitter.join()
        _check_sender(failed)
        # The stream can end between two turns of the loop above, which then ends too.
        report.stream_s = report.stream_s or round(time.monotonic() - began, 1)
        report.faults_s = round(time.monotonic() - began, 1)
        chaos.scale_back()
        want, want_learning = expected_tables(stream.proctoring), expected(stream.learning)
        ended = time.monotonic()
        report.table_problems = converge.wait(
            lambda: (
                check_tables(settings, want) + learning_check.check_tables(settings, want_learning)
                or _workflow(settings, stream, poisoned, report)
            ),
            lambda: converge.committed(settings, list(COMMANDS)),
            still_s,
            chaos.supervise,
        )
        report.recovery["tables equal the oracle, after the stream"] = [
            round(time.monotonic() - ended, 1)
        ]
        with contextlib.suppress(psycopg.Error):
            report.parked_ever = learning_check.parked_ever(settings)
        _count_outputs(settings, stream.proctoring, report)
        learned = learning_check.check_topics(settings, want_learning, poisoned)
        report.lost["learning"], report.duplicates["learning"] = learned.lost, learned.duplicates
        report.learning_des, report.topic_problems = learned.des, learned.problems
    finally:
        watching.set()
        exits = stages.stop_all()
        report.faults, report.unplanned_exits = dict(chaos.injected), dict(chaos.unplanned_exits)
        report.recovery = {**chaos.cluster.recovery, **report.recovery}
        report.stop_exits = dict(Counter(exits.values()))
        report.seconds = round(time.monotonic() - t0, 1)
        # An instance that exited on its own just before its stop (a start-up while PostgreSQL
        # or the broker was away: status 3) had no SIGTERM to obey; the supervisor would have
        # started it again. EXIT_WEDGED is the documented end of a librdkafka transaction call
        # that hung (its issues 5456/5511), also when a SIGTERM arrives during the hang: nothing
        # is committed and the next instance aborts. Any other exit is a failure.
        unclean = {
            i: code
            for i, code in exits.items()
            if code not in (0, EXIT_WEDGED) and not (i in stages.exited_unasked and code == 3)
        }
        if unclean:
            report.table_problems.append(f"stages did not stop cleanly: {exits}")
        # A failed run keeps the broker's and the database's logs (and data) to look into.
        stop_stack(stack_dir, purge=report.passed)
    return report


def _workflow(
    settings: Settings, stream: Stream, poisoned: Counter[str], report: Report
) -> list[str]:
    """The OUS tables against the oracle applied to the commands as logged (their order of
    record), and each command sent logged exactly once. Asked once the other tables match: the
    state service's input is read whole."""
    topics = Topics(settings.namespace)
    expect = len(stream.workflow) + poisoned[topics.sink_bucket("demux", "ous")]
    logged = logged_commands(settings, expect, skip_key=learning_check.POISON_KEY)
    got = Counter((c.uid, c.op, c.value) for c in logged)
    sent = Counter(stream.workflow)
    report.lost["workflow"] = sum((sent - got).values())
    report.duplicates["workflow"] = sum((got - sent).values())
    want = ous_expected(logged, topics.replies, settings.max_hops)
    report.ous_states = dict(Counter(str(s[0]) for s in want.status.values()))
    return check_workflow(settings, want)


def _count_outputs(settings: Settings, rows: list[dict[str, str]], report: Report) -> None:
    topics = Topics(settings.namespace)
    # A million-event run has ~700,000 of them: the time to read them grows with their number.
    des = read_topic(
        settings,
        topics.sink("demux", "fulfillment.welcome"),
        expect=len(rows),
        timeout_s=max(180.0, len(rows) / 1000),
    )
    with contextlib.closing(codec_for(settings)) as codec:
        got = Counter(
            FulfillmentEvent.decode(codec, m.value()).event_id for m in des if m.key() != b"poison"
        )
    sent = Counter(r["id"] for r in rows)
    report.lost["proctoring"] = sum(max(0, n - got[i]) for i, n in sent.items())
    report.duplicates["proctoring"] = sum(max(0, n - sent[i]) for i, n in got.items())
    due: Counter[str] = Counter()
    for key, n in report.poison.items():
        due[key.split(": ")[0]] += n
    for stage, n in due.items():
        # Every dead letter on the stage's topic, poison or not: only the poison may be there.
        for m in read_topic(settings, topics.dead_letter(stage), expect=n, linger_s=1):
            found = f"{stage}: {header(m.headers(), H_REASON)}"
            report.dead_lettered[found] = report.dead_lettered.get(found, 0) + 1


def _watch(settings: Settings, report: Report, done: threading.Event) -> None:
    """Once a second: how loaded the machine is, and how many scores wait parked."""
    while not done.wait(1.0):
        report.load_samples.append(os.getloadavg()[0])
        with contextlib.suppress(psycopg.Error):  # PostgreSQL restarting: the next look will do
            report.most_parked = max(report.most_parked, learning_check.parked(settings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, help="about this many raw events, mixed (instead of the counts below)"
    )
    parser.add_argument("--fulfillments", type=int, default=9_000)
    parser.add_argument("--students", type=int, default=400, help="in the learning class")
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--lessons", type=int, default=4, help="per unit")
    parser.add_argument("--rate", type=float, default=2_000)
    parser.add_argument("--fault-every", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--brokers", type=int, choices=(1, 3), default=1, help="Kafka brokers; 3 adds broker faults"
    )
    parser.add_argument(
        "--load", type=int, default=0, help="CPU busy-loop processes to run alongside"
    )
    parser.add_argument(
        "--min-faults", type=int, default=0, help="keep injecting after the stream until then"
    )
    parser.add_argument(
        "--still",
        type=float,
        default=300.0,
        help="after the stream, fail once the pipeline has not moved for this many seconds",
    )
    parser.add_argument("--workdir", type=Path, default=Path(".da/chaos"))
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    # A stopped run still stops its stages, its stack and its CPU burners (a background job
    # ignores SIGINT, so SIGTERM is how it gets stopped).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    shutil.rmtree(args.workdir, ignore_errors=True)
    mix = (
        Mix(args.fulfillments, args.students, args.units, args.lessons)
        if args.events is None
        else Mix.of(args.events, args.units, args.lessons)
    )
    report = run(
        args.workdir,
        args.seed,
        mix,
        args.rate,
        args.fault_every,
        still_s=args.still,
        min_faults=args.min_faults,
        load=args.load,
        brokers=args.brokers,
    )
    table = render(report)
    print(table)
    if args.record:
        size = (
            f"--fulfillments {args.fulfillments} --students {args.students}"
            if args.events is None
            else f"--events {args.events}"
        )
        arguments = (
            f"{size} --units {args.units} --lessons {args.lessons} --rate {args.rate:g} "
            f"--fault-every {args.fault_every:g} --seed {args.seed} --brokers {args.brokers} "
            f"--load {args.load} "
            f"--min-faults {args.min_faults} --still {args.still:g}"
        )
        record(args.record, arguments, table, report)
    raise SystemExit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
