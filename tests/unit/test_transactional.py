from __future__ import annotations

from collections.abc import Sequence

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from common.deadletter import DeadLetterLimit
from common.errors import InvalidEvent, TransientError
from common.runloop import Message, Stopper
from common.transactional import Output, TransactionalProcessor
from tests.fakes import FakeConsumer, FakeProducer, messages


def handler(msg: Message) -> Sequence[Output]:
    if msg.value() == b"bad":
        raise InvalidEvent("bad", "a bad one")
    return [Output("out", None, (msg.value() or b"") + b"!")]


def processor(producer: FakeProducer, monkeypatch: pytest.MonkeyPatch) -> TransactionalProcessor:
    monkeypatch.setattr(Stopper, "wait", lambda self, s: False)  # no real back-off sleep
    return TransactionalProcessor(
        "s",
        producer,
        handler,
        "dlq",
        timeout_s=1,
        limit=DeadLetterLimit(0.9),
        stop=Stopper(),
    )


def test_outputs_and_dead_letters_commit_together(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    proc = processor(producer, monkeypatch)
    proc.process(FakeConsumer({}), messages("in", [b"a", b"bad", b"b"]))
    assert producer.visible == [("out", b"a!"), ("dlq", b"bad"), ("out", b"b!")]
    assert (proc.produced, proc.dead_lettered) == (2, 1)


def test_an_idle_poll_commits_a_moved_position_once(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    proc = processor(producer, monkeypatch)
    consumer = FakeConsumer({})
    proc.process(consumer, messages("in", [b"a", b"b"]))
    assert [tp.offset for tp in producer.offsets] == [2]
    proc.idle(consumer, [TopicPartition("in", 0, 2)])  # nothing past the batch: no transaction
    assert producer.calls.count("commit_transaction") == 1
    proc.idle(consumer, [TopicPartition("in", 0, 3)])  # past the batch's commit marker
    assert [tp.offset for tp in producer.offsets] == [2, 3]
    assert producer.calls.count("commit_transaction") == 2 and producer.visible[-1][0] == "out"
    proc.idle(consumer, [TopicPartition("in", 0, 3)])
    assert producer.calls.count("commit_transaction") == 2


def test_a_commit_that_times_out_is_repeated_not_aborted(monkeypatch: pytest.MonkeyPatch) -> None:
    timeout = KafkaError(KafkaError._TIMED_OUT, "commit timed out", retriable=True)
    producer = FakeProducer(fail={"commit_transaction": [timeout, timeout]})
    processor(producer, monkeypatch).process(FakeConsumer({}), messages("in", [b"a"]))
    assert producer.calls.count("commit_transaction") == 3
    assert "abort_transaction" not in producer.calls
    assert producer.visible == [("out", b"a!")]


def test_an_abortable_error_aborts_and_asks_for_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    abortable = KafkaError(KafkaError._STATE, "message timed out", txn_requires_abort=True)
    producer = FakeProducer(fail={"commit_transaction": [abortable]})
    with pytest.raises(TransientError):
        processor(producer, monkeypatch).process(FakeConsumer({}), messages("in", [b"a"]))
    assert producer.calls[-1] == "abort_transaction" and producer.visible == []


def test_produce_in_a_failed_transaction_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    state = KafkaError(KafkaError._STATE, "transaction in error state")
    producer = FakeProducer(fail={"produce": [state]})
    with pytest.raises(TransientError):
        processor(producer, monkeypatch).process(FakeConsumer({}), messages("in", [b"a"]))
    assert "abort_transaction" in producer.calls and producer.visible == []


def test_a_fenced_instance_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    fenced = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)
    producer = FakeProducer(fail={"commit_transaction": [fenced]})
    with pytest.raises(KafkaException):
        processor(producer, monkeypatch).process(FakeConsumer({}), messages("in", [b"a"]))
    assert producer.visible == []


def test_init_is_repeated_while_the_broker_is_away(monkeypatch: pytest.MonkeyPatch) -> None:
    timeout = KafkaError(KafkaError._TIMED_OUT, "retry call to resume", retriable=True)
    producer = FakeProducer(fail={"init_transactions": [timeout, timeout]})
    processor(producer, monkeypatch)
    assert producer.calls == ["init_transactions"] * 3


class Wedged(Exception):
    pass


def test_a_call_that_never_returns_ends_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    never = threading.Event()
    producer = FakeProducer()
    monkeypatch.setattr(producer, "send_offsets_to_transaction", lambda *a, **k: never.wait(30))

    def wedged(why: str) -> None:
        raise Wedged(why)

    monkeypatch.setattr(Stopper, "wait", lambda self, s: False)
    proc = TransactionalProcessor(
        "s",
        producer,
        handler,
        "dlq",
        timeout_s=0.05,
        limit=DeadLetterLimit(0.9),
        stop=Stopper(),
        wedged=wedged,
    )
    with pytest.raises(Wedged):
        proc.process(FakeConsumer({}), messages("in", [b"a"]))
    assert "commit_transaction" not in producer.calls and producer.visible == []
    never.set()


def test_an_idle_stage_probes_its_producer_with_a_transaction_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = FakeProducer()
    proc = processor(producer, monkeypatch)
    consumer = FakeConsumer({})
    proc.process(consumer, messages("in", [b"a"]))
    proc.idle(consumer, [TopicPartition("in", 0, 1)])
    assert producer.calls.count("commit_transaction") == 1
    monkeypatch.setattr("common.transactional.IDLE_PROBE_S", 0.0)
    proc.idle(consumer, [TopicPartition("in", 0, 1)])
    assert producer.calls.count("commit_transaction") == 2
