"""The exactly-once outbox relay follows librdkafka's transactional contract: a commit that
timed out is committed again, not aborted (an abort then only fails with a conflict, and the
relay stood still); a client that cannot finish or abort its transaction ends the process."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from common.outbox import OutboxRelay
from tests.fakes import FakeProducer

ROWS: list[tuple[object, ...]] = [(1, "out", b"k", b"v", [], [])]


class Marker:
    def record(self, producer: FakeProducer, ids: list[int], timeout_s: float) -> None:
        producer.produce("marker", ",".join(map(str, ids)).encode())


class Wedged(Exception):
    pass


def _relay(producer: FakeProducer) -> OutboxRelay:
    relay = OutboxRelay("o", producer, timeout_s=0.5, marker=Marker())  # type: ignore[arg-type]

    def wedged(why: str) -> None:
        raise Wedged(why)

    relay._wedged = wedged
    return relay


def _timed_out() -> KafkaError:
    return KafkaError(KafkaError._TIMED_OUT, "commit timed out", retriable=True)


def test_a_commit_that_timed_out_is_committed_again_not_aborted() -> None:
    producer = FakeProducer(fail={"commit_transaction": [_timed_out(), _timed_out()]})
    _relay(producer)._send_transaction(ROWS, [1], Marker())  # type: ignore[arg-type]
    assert producer.calls.count("commit_transaction") == 3
    assert "abort_transaction" not in producer.calls
    assert ("out", b"v") in producer.visible


def test_a_commit_that_keeps_timing_out_ends_the_process() -> None:
    producer = FakeProducer(fail={"commit_transaction": [_timed_out()] * 100})
    with pytest.raises(Wedged, match="kept failing"):  # (exit_wedged does not return)
        _relay(producer)._send_transaction(ROWS, [1], Marker())  # type: ignore[arg-type]
    assert producer.calls.count("commit_transaction") > 2


def test_an_abortable_failure_is_aborted_and_raised() -> None:
    abortable = KafkaError(KafkaError._STATE, "a record failed", txn_requires_abort=True)
    producer = FakeProducer(fail={"commit_transaction": [abortable]})
    with pytest.raises(Exception, match="a record failed"):
        _relay(producer)._send_transaction(ROWS, [1], Marker())  # type: ignore[arg-type]
    assert producer.calls[-1] == "abort_transaction"


def test_a_transaction_that_cannot_be_aborted_ends_the_process() -> None:
    abortable = KafkaError(KafkaError._STATE, "a record failed", txn_requires_abort=True)
    conflict = KafkaError(KafkaError._CONFLICT, "commit_transaction already in progress")
    producer = FakeProducer(
        fail={"commit_transaction": [abortable], "abort_transaction": [conflict]}
    )
    with pytest.raises(Wedged, match="could not be aborted"):
        _relay(producer)._send_transaction(ROWS, [1], Marker())  # type: ignore[arg-type]
