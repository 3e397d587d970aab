from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from common.deadletter import H_REASON, DeadLetterLimit, DeadLetterLimitExceeded, header
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


def test_a_call_that_never_returns_ends_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    never = threading.Event()
    producer = FakeProducer()
    stuck: list[bool] = []

    def hang(*_a: object, **_k: object) -> None:
        stuck.append(never.wait(30))

    monkeypatch.setattr(producer, "send_offsets_to_transaction", hang)
    reasons: list[str] = []

    def wedged(why: str) -> None:
        # The real one ends the process; here the hung call is let go so the test can look.
        reasons.append(why)
        never.set()

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
    proc.process(FakeConsumer({}), messages("in", [b"a"]))
    # The watcher ended the wait (True), not the call's own 30 s, while the call hung.
    assert stuck == [True] and len(reasons) == 1 and "ran past" in reasons[0]


def test_transaction_calls_share_one_watcher_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    proc = processor(producer, monkeypatch)
    before = threading.active_count()
    for _ in range(20):
        proc.process(FakeConsumer({}), messages("in", [b"a"]))
    assert threading.active_count() == before  # no thread per call, none left behind
    assert producer.calls.count("commit_transaction") == 20
    proc.close()
    assert threading.active_count() == before - 1  # its watcher ended with it


def deep(msg: Message) -> Sequence[Output]:
    """A handler whose work some messages' content breaks (as JSON nested too deep would)."""
    value = msg.value() or b""
    if value == b"deep":
        raise RecursionError("maximum recursion depth exceeded")
    if value == b"bug":
        raise KeyError("a bug in the handler")
    if value == b"huge":
        return [Output("out", None, b"x" * 5000)]
    if value.startswith(b"elements"):  # one good element, one rejected (as GEP's lists)
        return [Output("out", None, b"ok"), Output("dlq", None, value)]
    return [Output("out", None, value + b"!")]


def deep_processor(
    producer: FakeProducer, monkeypatch: pytest.MonkeyPatch, limit: DeadLetterLimit | None = None
) -> TransactionalProcessor:
    monkeypatch.setattr(Stopper, "wait", lambda self, s: False)
    return TransactionalProcessor(
        "s",
        producer,
        deep,
        "dlq",
        timeout_s=1,
        limit=limit or DeadLetterLimit(0.9),
        stop=Stopper(),
        max_message_bytes=4000,
    )


def test_a_message_that_breaks_the_handler_is_a_dead_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = FakeProducer()
    proc = deep_processor(producer, monkeypatch)
    proc.process(FakeConsumer({}), messages("in", [b"a", b"deep", b"b"]))
    assert producer.visible == [("out", b"a!"), ("dlq", b"deep"), ("out", b"b!")]
    reasons = [header(h, H_REASON) for h in producer.headers]
    assert reasons == [None, "unprocessable", None]


def test_a_bug_in_the_handler_still_ends_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    with pytest.raises(KeyError):
        deep_processor(producer, monkeypatch).process(
            FakeConsumer({}), messages("in", [b"a", b"bug"])
        )
    assert producer.visible == [] and producer.calls[-1] == "abort_transaction"


def test_an_output_over_the_size_limit_dead_letters_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = FakeProducer()
    proc = deep_processor(producer, monkeypatch)
    proc.process(FakeConsumer({}), messages("in", [b"a", b"huge", b"b"]))
    assert producer.visible == [("out", b"a!"), ("dlq", b"huge"), ("out", b"b!")]
    assert header(producer.headers[1], H_REASON) == "too_large"


def test_a_record_the_broker_refuses_is_dead_lettered_on_the_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The broker's own limit is lower than the setting: only delivery tells.
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
    producer = FakeProducer(
        reject_delivery=lambda t, v: too_large if t == "out" and v == b"big!" else None
    )
    proc = deep_processor(producer, monkeypatch)
    batch = messages("in", [b"a", b"big", b"b"])
    with pytest.raises(TransientError):
        proc.process(FakeConsumer({}), batch)
    assert producer.visible == [] and "abort_transaction" in producer.calls
    proc.process(FakeConsumer({}), batch)  # the run loop's retry of the same batch
    assert producer.visible == [("out", b"a!"), ("dlq", b"big"), ("out", b"b!")]
    assert header(producer.headers[-2], H_REASON) == "rejected_by_broker"
    assert proc.condemned == {}


def test_a_refused_dead_letter_is_sent_as_headers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
    producer = FakeProducer(reject_delivery=lambda t, v: too_large if v and b"big" in v else None)
    proc = deep_processor(producer, monkeypatch)
    batch = messages("in", [b"big"])
    for _ in range(2):
        with pytest.raises(TransientError):
            proc.process(FakeConsumer({}), batch)
    proc.process(FakeConsumer({}), batch)
    assert producer.visible == [("dlq", b"")]


def test_element_dead_letters_count_against_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    limit = DeadLetterLimit(0.5, window=10, min_count=3)
    proc = deep_processor(producer, monkeypatch, limit)
    proc.process(FakeConsumer({}), messages("in", [b"elements-1", b"elements-2"]))
    assert proc.dead_lettered == 2 and proc.produced == 2
    with pytest.raises(DeadLetterLimitExceeded):
        proc.process(FakeConsumer({}), messages("in", [b"elements-3", b"elements-4"], 1))


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


def test_a_call_that_keeps_failing_ends_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # A client failed send_offsets_to_transaction at once, every time, for minutes after its
    # broker was back; repeating it for good stalled the stage through its SIGTERM.
    failing = KafkaError(KafkaError._TRANSPORT, "Broker transport failure", retriable=True)
    producer = FakeProducer(fail={"send_offsets_to_transaction": [failing] * 1000})
    reasons: list[str] = []
    proc = TransactionalProcessor(
        "s",
        producer,
        handler,
        "dlq",
        timeout_s=0.01,  # bounded at twice that + 5 s: the test takes about 6 s
        limit=DeadLetterLimit(0.9),
        stop=Stopper(),
        wedged=reasons.append,  # the real one ends the process
    )
    with pytest.raises(TransientError):
        proc.process(FakeConsumer({}), messages("in", [b"a"]))
    assert len(reasons) == 1 and "kept failing" in reasons[0]
    assert producer.visible == [] and producer.calls[-1] == "abort_transaction"
