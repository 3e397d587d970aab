"""What the Kubernetes manifests rely on, proven on real Kafka with real processes: a stage
instance killed (SIGKILL) inside an open transaction and restarted under the same instance id
(a StatefulSet pod keeps its name, so its transactional id) aborts its predecessor's transaction
as it starts; restarted under another id, the transaction stays open, holding back every
read_committed reader of its partitions, until the broker times it out.

GEP works through a backlog; it is stopped (SIGSTOP) again and again until a moment when one of
its output partitions' last stable offset lags the high watermark (records of an open
transaction are on the broker), and killed there. Read_committed readers never see them.
"""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from cli.sample.fulfillments import generate
from cli.schemas import codec_for
from common.events import CanonicalEvent
from common.kafka import make_admin, make_consumer, make_producer
from common.settings import Settings
from common.topics import Topics
from tests.e2e.pipeline import Stages, prepare

BACKLOG = 8_000  # raw events per phase: far more than GEP gets through before it is killed
# The killed instance's transaction timeout: long where the successor must fence it (so an
# abort well before it can only be the fencing), short where the successor cannot.
LONG_TIMEOUT_MS, SHORT_TIMEOUT_MS = 300_000, 15_000


@dataclass(frozen=True)
class Killed:
    at: float  # monotonic time of the SIGKILL
    stuck: dict[tuple[str, int], int]  # partition -> its high watermark, past its stable offset
    committed: int  # the sum of GEP's committed input offsets at the kill


def _offsets(admin: AdminClient, parts: list[TopicPartition], level: IsolationLevel) -> list[int]:
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    asked = {tp: latest for tp in parts}
    found = admin.list_offsets(asked, isolation_level=level, request_timeout=10)
    return [found[tp].result().offset for tp in parts]


def _open_transactions(
    admin: AdminClient, parts: list[TopicPartition]
) -> dict[tuple[str, int], int]:
    stable = _offsets(admin, parts, IsolationLevel.READ_COMMITTED)
    high = _offsets(admin, parts, IsolationLevel.READ_UNCOMMITTED)
    return {
        (tp.topic, tp.partition): h for tp, s, h in zip(parts, stable, high, strict=True) if s < h
    }


def _committed(admin: AdminClient, settings: Settings) -> int:
    group = settings.group_id("gep")
    found = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return sum(max(0, tp.offset) for tp in found.result(timeout=10).topic_partitions or [])


def _send_backlog(settings: Settings, rows: list[dict[str, str]]) -> None:
    producer = make_producer(settings)
    for r in rows:
        while True:
            try:
                producer.produce(
                    Topics(settings.namespace).ingest,
                    json.dumps(r).encode(),
                    r["fulfillment_id"].encode(),
                    headers=[("da-format", b"proctoring.csv")],
                )
                break
            except BufferError:  # the client's queue is full: let it deliver some first
                producer.poll(0.5)
    assert producer.flush(60) == 0


def _kill_inside_a_transaction(
    stages: Stages,
    instance: str,
    admin: AdminClient,
    settings: Settings,
    parts: list[TopicPartition],
) -> Killed:
    """SIGSTOP the instance; SIGKILL it if a transaction of its is open on the broker, else let
    it go on a moment and try again."""
    rng = random.Random(7)
    proc = stages.procs[instance]
    deadline = time.monotonic() + 300
    while _committed(admin, settings) == 0:  # it is under way: a first transaction committed
        assert proc.poll() is None and time.monotonic() < deadline, stages.tails()
        time.sleep(0.2)
    while time.monotonic() < deadline:
        proc.send_signal(signal.SIGSTOP)
        stuck = _open_transactions(admin, parts)
        if stuck:
            # A transaction whose commit was already asked for ends without the process: only
            # one still open a while later, with the process stopped, is left to its successor.
            time.sleep(1.5)
            later = _open_transactions(admin, parts)
            stuck = {key: high for key, high in stuck.items() if later.get(key) == high}
        if stuck:
            committed = _committed(admin, settings)
            stages.kill(instance)
            return Killed(time.monotonic(), stuck, committed)
        proc.send_signal(signal.SIGCONT)
        time.sleep(rng.uniform(0.0, 0.3))
    raise AssertionError(f"{instance} was never caught inside a transaction: {stages.tails()}")


def _wait_resolved(
    admin: AdminClient, parts: list[TopicPartition], killed: Killed, timeout_s: float
) -> float:
    """Seconds from the kill until every transaction it left open was ended (aborted)."""
    deadline = killed.at + timeout_s
    while time.monotonic() < deadline:
        stable = _offsets(admin, parts, IsolationLevel.READ_COMMITTED)
        now = {(tp.topic, tp.partition): o for tp, o in zip(parts, stable, strict=True)}
        if all(now[key] >= high for key, high in killed.stuck.items()):
            return time.monotonic() - killed.at
        time.sleep(0.2)
    raise AssertionError(f"the open transaction was not ended within {timeout_s:.0f}s")


def _wait_new_commit(admin: AdminClient, settings: Settings, killed: Killed) -> float:
    """Seconds from the kill until the successor committed a transaction of its own."""
    deadline = killed.at + 300
    while time.monotonic() < deadline:
        if _committed(admin, settings) > killed.committed:
            return time.monotonic() - killed.at
        time.sleep(0.2)
    raise AssertionError("the successor committed nothing within 300s")


def _wait_drained(admin: AdminClient, settings: Settings, stages: Stages) -> None:
    """Until GEP committed its whole input: the next phase, and the readers, start from there."""
    topic = Topics(settings.namespace).ingest
    parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
    end = sum(_offsets(admin, parts, IsolationLevel.READ_UNCOMMITTED))
    deadline = time.monotonic() + 300
    while _committed(admin, settings) < end:
        assert time.monotonic() < deadline, stages.tails()
        time.sleep(0.5)


def _phase(
    settings: Settings,
    env: dict[str, str],
    logs: Path,
    timeout_ms: int,
    successor: str,
    rows: list[dict[str, str]],
) -> tuple[float, float]:
    """GEP instance gep-1 killed inside a transaction, ``successor`` started; returns the seconds
    from the kill to the end of the open transaction and to the successor's first commit."""
    phase_env = {**env, "DA_BATCH_SIZE": "50", "DA_KAFKA_TRANSACTION_TIMEOUT_MS": str(timeout_ms)}
    logs.mkdir()
    stages = Stages(phase_env, logs, {"gep": ["gep", "run"]})
    admin = make_admin(settings)
    topic = Topics(settings.namespace).canonical
    parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
    _send_backlog(settings, rows)
    stages.start("gep-1")
    try:
        killed = _kill_inside_a_transaction(stages, "gep-1", admin, settings, parts)
        # Still open with its instance dead: only the successor (or the timeout) can end it.
        still = _open_transactions(admin, parts)
        assert all(still.get(key) == high for key, high in killed.stuck.items())
        stages.start(successor)
        ended = _wait_resolved(admin, parts, killed, timeout_s=timeout_ms / 1000 + 120)
        first = _wait_new_commit(admin, settings, killed)
        _wait_drained(admin, settings, stages)
    finally:
        exits = stages.stop_all()
    assert set(exits.values()) <= {0, -signal.SIGKILL}, (exits, stages.tails())
    return ended, first


def _read_all(settings: Settings, isolation: str, expect: int) -> list[bytes]:
    consumer = make_consumer(
        settings, f"reader-{uuid.uuid4().hex}", **{"isolation.level": isolation}
    )
    consumer.subscribe([Topics(settings.namespace).canonical])
    out: list[bytes] = []
    deadline, quiet = time.monotonic() + 120, 0.0
    try:
        while time.monotonic() < deadline and (len(out) < expect or quiet < 3.0):
            got = [m.value() or b"" for m in consumer.consume(1000, 0.5) if m.error() is None]
            out += got
            quiet = 0.0 if got else quiet + 0.5
    finally:
        consumer.close()
    return out


def test_a_restart_under_the_same_instance_id_fences_the_open_transaction(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    prepare(settings_env)
    # A fulfillment makes several raw events: a few thousand make the backlog of both phases.
    made = generate(seed=21, count=2 * BACKLOG // 5)
    rows = [{k: str(v) for k, v in asdict(r).items()} for r in made][: 2 * BACKLOG]
    assert len(rows) == 2 * BACKLOG
    same, same_first = _phase(
        settings, settings_env, tmp_path / "same", LONG_TIMEOUT_MS, "gep-1", rows[:BACKLOG]
    )
    other, other_first = _phase(
        settings, settings_env, tmp_path / "other", SHORT_TIMEOUT_MS, "gep-2", rows[BACKLOG:]
    )
    print(
        f"\nrestart under the same instance id: open transaction aborted {same:.1f}s after the "
        f"kill, first new commit after {same_first:.1f}s (transaction timeout "
        f"{LONG_TIMEOUT_MS / 1000:.0f}s)\nrestart under another id: open transaction ended "
        f"{other:.1f}s after the kill, first new commit after {other_first:.1f}s (transaction "
        f"timeout {SHORT_TIMEOUT_MS / 1000:.0f}s)"
    )
    # Aborted long before its timeout could have: the successor's first init_transactions did it.
    assert same < LONG_TIMEOUT_MS / 1000 / 2
    # Another id fences nothing: the transaction lived on, past most of its timeout (it was open
    # a moment at most before the kill), and nothing the successor wrote reached readers sooner.
    assert other >= SHORT_TIMEOUT_MS / 1000 / 2
    assert other_first >= other - 1.0
    # Read_committed readers got every event once; the aborted records exist, unread by them.
    with closing(codec_for(settings)) as codec:
        seen = [
            CanonicalEvent.decode(codec, v).event_id
            for v in _read_all(settings, "read_committed", len(rows))
        ]
    assert sorted(seen) == sorted(r["id"] for r in rows)
    assert len(_read_all(settings, "read_uncommitted", len(rows))) > len(rows)
