"""Building dead letters: the original kept, or its head, length and hash when too large."""

from __future__ import annotations

import hashlib

from common.deadletter import (
    H_LENGTH,
    H_OFFSET,
    H_REASON,
    H_SHA256,
    H_TRUNCATED,
    KEPT_OF_TRUNCATED,
    build,
    dead_letter,
    header,
    record_size,
)
from common.errors import InvalidEvent
from tests.fakes import FakeMessage


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
