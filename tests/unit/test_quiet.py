"""While a broker is away, its connection errors make one line per interval, with a count."""

from __future__ import annotations

import logging

import pytest

from common.kafka import Quiet, _QuietFilter

REFUSED = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"


def test_one_line_per_broker_per_interval_then_the_count_held_back() -> None:
    now = [0.0]
    quiet = Quiet(interval_s=30, clock=lambda: now[0])
    key = quiet.key("_TRANSPORT", REFUSED)
    assert key == ("127.0.0.1:9092", "connection")
    assert quiet.admit(key) == ""
    for step in range(40):  # 40 a second, as librdkafka retries
        now[0] = 0.025 * (step + 1)
        assert quiet.admit(key) is None
    other = quiet.key("FAIL", REFUSED.replace("9092", "9093"))
    assert quiet.admit(other) == ""  # another broker has its own line
    now[0] = 31.0
    assert quiet.admit(key) == " (40 more like it in the last 31s)"
    assert quiet.admit(key) is None


def test_other_trouble_of_the_same_broker_is_not_held_back_by_a_connection_line() -> None:
    quiet = Quiet(interval_s=30, clock=lambda: 0.0)
    assert quiet.admit(quiet.key("_TRANSPORT", REFUSED)) == ""
    assert quiet.admit(quiet.key("_AUTHENTICATION", REFUSED)) == ""


def test_librdkafka_lines_go_through_the_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    from common import kafka

    monkeypatch.setattr(kafka, "_QUIET", Quiet(interval_s=30, clock=lambda: 0.0))
    flt = _QuietFilter()
    thread = "[rdkafka#consumer-1] [thrd:127.0.0.1:9092/bootstrap]"
    text = f"FAIL {thread}: {REFUSED} (after 0ms in state CONNECT)"

    def record() -> logging.LogRecord:
        return logging.LogRecord("librdkafka", logging.ERROR, __file__, 1, text, None, None)

    first = record()
    assert flt.filter(first)
    assert first.getMessage() == f"FAIL {REFUSED}"
    assert not flt.filter(record())
