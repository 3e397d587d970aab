"""The stage observer: metrics counted only for what committed, health and its watchdog, the
HTTP endpoints, and output that ``promtool check metrics`` accepts."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import generate_latest

from common.deadletter import H_REASON
from common.health import HealthServer
from common.metrics import MeteredProducer
from common.observe import StageObserver
from tests.fakes import FakeConsumer, FakeProducer, messages


def observer(**kw: object) -> StageObserver:
    args: dict[str, object] = {
        "loop_ttl_s": 60.0,
        "unassigned_max_s": 60.0,
        "unhealthy_exit_s": 60.0,
    }
    args.update(kw)
    return StageObserver("gep", **args)  # type: ignore[arg-type]


def value(obs: StageObserver, name: str, **labels: str) -> float:
    found = obs.metrics.registry.get_sample_value(name, {"stage": "gep", **labels})
    return 0.0 if found is None else found


def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_dead_letters_count_by_reason_only_once_their_batch_commits() -> None:
    obs = observer()
    producer = MeteredProducer(FakeProducer(), "dlq", obs)
    producer.produce("dlq", b"x", None, headers=[(H_REASON, b"bad_json")])
    obs.retried(RuntimeError("broker away"))  # that batch is retried: nothing counted
    producer.produce("dlq", b"x", None, headers=[(H_REASON, b"bad_json")])
    producer.produce("out", b"y", None, headers=None)
    producer.produce("dlq", b"z", None, headers=[(H_REASON, b"empty"), ("da-index", b"2")])
    obs.batch(messages("in", [b"a", b"b", b"c"]), 0.2)
    assert value(obs, "da_dead_letters_total", reason="bad_json") == 1
    assert value(obs, "da_dead_letters_total", reason="empty") == 1
    # One whole record was rejected; the element rejection leaves its record handled.
    assert value(obs, "da_records_total", outcome="dead_lettered") == 1
    assert value(obs, "da_records_total", outcome="ok") == 2
    assert value(obs, "da_retries_total") == 1
    assert value(obs, "da_batch_seconds_count") == 1


def test_the_transaction_commit_is_timed() -> None:
    obs = observer()
    producer = MeteredProducer(FakeProducer(), "dlq", obs)
    producer.begin_transaction()
    producer.send_offsets_to_transaction([TopicPartition("in", 0, 1)], object())
    producer.commit_transaction()
    assert value(obs, "da_commit_seconds_count") == 1


def test_a_loop_that_stops_turning_fails_health_and_exits_past_the_second_bound() -> None:
    exits: list[str] = []
    obs = observer(loop_ttl_s=0.2, unhealthy_exit_s=0.5, exit=exits.append)
    consumer = FakeConsumer({})
    obs.turned(consumer)
    assert obs.problem() is None
    obs.start()
    wait_for(lambda: obs.problem() is not None)
    assert "has not turned" in (obs.problem() or "")
    wait_for(lambda: bool(exits))
    assert "unhealthy" in exits[0]
    obs.close()


def test_out_of_its_group_with_lag_nobody_consumes_fails_health(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("common.observe.LAG_EVERY_S", 0.0)
    reads = [(100, 5), (100, 5), (100, 5)]
    obs = observer(unassigned_max_s=0.05, input_lag=lambda: reads.pop(0) if reads else (100, 5))
    consumer = FakeConsumer({})
    time.sleep(0.06)
    obs.turned(consumer)
    obs.turned(consumer)
    time.sleep(0.06)
    obs.turned(consumer)
    assert "no partition" in (obs.problem() or "")
    obs.assigned([TopicPartition("in", 0)])
    assert obs.problem() is None


def test_unassigned_while_others_consume_is_healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("common.observe.LAG_EVERY_S", 0.0)
    committed = iter(range(0, 10_000, 10))
    obs = observer(unassigned_max_s=0.05, input_lag=lambda: (100, next(committed)))
    consumer = FakeConsumer({})
    for _ in range(5):
        time.sleep(0.03)
        obs.turned(consumer)
    assert obs.problem() is None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoints_answer_readiness_health_and_metrics() -> None:
    obs = observer(loop_ttl_s=0.2)
    server = HealthServer(obs, "127.0.0.1", -1)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert _get(base + "/readyz")[0] == 503
        obs.assigned([])  # joined, even with no partition
        assert _get(base + "/readyz") == (200, "ok\n")
        obs.turned(FakeConsumer({}))
        assert _get(base + "/healthz")[0] == 200
        wait_for(lambda: _get(base + "/healthz")[0] == 503)
        assert _get(base + "/readyz")[0] == 200  # readiness never follows health or lag
        status, text = _get(base + "/metrics")
        assert status == 200 and 'da_rebalances_total{event="assigned",stage="gep"}' in text
    finally:
        server.close()


def test_promtool_accepts_the_metrics(promtool: str) -> None:
    obs = observer()
    producer = MeteredProducer(FakeProducer(), "dlq", obs)
    producer.produce("dlq", b"x", None, headers=[(H_REASON, b"bad_json")])
    obs.assigned([TopicPartition("in", 0)])
    obs.batch(messages("in", [b"a"]), 0.01)
    text = generate_latest(obs.metrics.registry)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


class _LeaderMoved(FakeConsumer):
    """A consumer whose partition's leader just moved: nothing fetched yet, and the broker it
    asks for the end offset answers "not leader" (a broker of the cluster was lost)."""

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        if cached:
            return -1001, -1001
        raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))


def test_a_lag_sample_during_a_leader_move_leaves_the_gauge_unset_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("common.observe.LAG_EVERY_S", 0.0)
    obs = observer()
    consumer = _LeaderMoved({("in", 0): []}, at={("in", 0): 0})
    obs.assigned([TopicPartition("in", 0)])
    obs.turned(consumer)  # raised out of the run loop before, and the stage exited
    assert (
        obs.metrics.registry.get_sample_value(
            "da_consumer_lag", {"stage": "gep", "topic": "in", "partition": "0"}
        )
        is None
    )
