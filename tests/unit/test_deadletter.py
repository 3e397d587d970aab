"""Building dead letters: the original kept, or its head, length and hash when too large."""

from __future__ import annotations

import hashlib

import pytest
from confluent_kafka import KafkaError

from common.deadletter import (
    H_LENGTH,
    H_OFFSET,
    H_REASON,
    H_SHA256,
    H_TRUNCATED,
    KEPT_OF_TRUNCATED,
    build,
    dead_letter,
    deliver,
    header,
    record_size,
    stripped,
)
from common.errors import InvalidEvent, TransientError
from common.runloop import Headers
from tests.fakes import FakeMessage, FakeProducer


def test_a_dead_letter_that_fits_keeps_the_original() -> None:
    msg = FakeMessage(b"v" * 1000, b"k", _offset=7, _headers=[("da-format", b"web")])
    dl = dead_letter("gep", msg, InvalidEvent("bad", "why"), max_bytes=10_000)
    assert (dl.key, dl.value) == (b"k", b"v" * 1000)
    assert header(dl.headers, H_OFFSET) == "7" and header(dl.headers, "da-format") == "web"
    assert header(dl.headers, H_TRUNCATED) is None


def test_a_dead_letter_too_large_keeps_the_head_its_length_and_hash() -> None:
    original = b"\xff" * 1_000_000  # ~1 MB of non-JSON: as large as the broker takes
    msg = FakeMessage(original, b"k")
    dl = dead_letter("gep", msg, InvalidEvent("bad_json", "not JSON"), max_bytes=1_000_000)
    assert dl.value == original[:KEPT_OF_TRUNCATED] and dl.key == b"k"
    assert header(dl.headers, H_REASON) == "bad_json"
    assert header(dl.headers, H_TRUNCATED) == "true"
    assert header(dl.headers, H_LENGTH) == str(len(original))
    assert header(dl.headers, H_SHA256) == hashlib.sha256(original).hexdigest()
    assert record_size(dl.key, dl.value, dl.headers) <= 1_000_000


def test_a_dead_letter_never_exceeds_the_limit_whatever_it_carries() -> None:
    msg = FakeMessage(b"x" * 200_000, b"k" * 100_000, _headers=[("h", b"y" * 100_000)])
    dl = build("s", msg.key(), msg.value(), "r", "d" * 5000, source=msg, max_bytes=80_000)
    assert record_size(dl.key, dl.value, dl.headers) <= 80_000
    assert header(dl.headers, H_REASON) == "r" and header(dl.headers, H_TRUNCATED) == "true"


def test_deliver_tells_refused_records_from_lost_ones() -> None:
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Message size too large")
    producer = FakeProducer(reject_delivery=lambda _t, v: too_large if v == b"big" else None)
    records: list[tuple[str, bytes | None, bytes | None, Headers]] = [
        ("dlq", None, b"a", []),
        ("dlq", None, b"big", []),
    ]
    assert deliver(producer, records, 1) == [1]
    away = KafkaError(KafkaError._MSG_TIMED_OUT, "Local: Message timed out")
    producer = FakeProducer(reject_delivery=lambda _t, _v: away)
    with pytest.raises(TransientError):
        deliver(producer, records, 1)


def test_a_stripped_dead_letter_keeps_why_and_what_was_cut() -> None:
    msg = FakeMessage(b"original", b"k", _headers=[("da-format", b"web")])
    dl = stripped(dead_letter("gep", msg, InvalidEvent("bad_json", "not JSON")))
    assert dl.value == b"" and dl.key == b"k"
    assert header(dl.headers, H_REASON) == "bad_json" and header(dl.headers, "da-format") is None
    assert header(dl.headers, H_LENGTH) == "8" and header(dl.headers, H_TRUNCATED) == "true"
    assert header(dl.headers, H_SHA256) == hashlib.sha256(b"original").hexdigest()
