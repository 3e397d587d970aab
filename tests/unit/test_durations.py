"""Every derived duration is integer arithmetic on epoch milliseconds: for random pairs of
instants, each format's time spent (through GEP and the demux, Avro included) equals plain
integer subtraction under the documented clamp (0..2 h, the reported value kept), and every
event time survives to the DE to the millisecond. Float seconds lose a millisecond now and then
(start 1614606666372, end 1614606797131 gave 130758 instead of 130759)."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from common.codec import Codec
from common.epoch import from_ms, to_ms
from common.events import CanonicalEvent, UsageEvent
from common.topics import Topics
from demux.stage import Demux
from dep.lifecycle import whole_seconds
from gep.stage import Gep
from tests.fakes import FakeMessage

CODEC = Codec()
GEP, DEMUX = Gep(Topics(), CODEC), Demux(Topics(), CODEC)
CLAMP_MS = 7_200_000
# Epoch ms GEP accepts (2000..2100); pairs either close together (real plays) or anywhere.
instant = st.integers(946_684_800_000, 4_102_444_800_000 - 1)
near = st.integers(-10_000, CLAMP_MS + 10_000)
FLOAT_LOSES_ONE = (1614606666372, 1614606797131)


def clamp(ms: int) -> tuple[int, bool]:
    """The documented rule: 0..2 h as is; outside, clamped, and the DE says so."""
    return (ms, False) if 0 <= ms <= CLAMP_MS else (0 if ms < 0 else CLAMP_MS, True)


def timespent(raw: dict[str, Any] | list[dict[str, Any]], fmt: str) -> tuple[UsageEvent, int]:
    """The time-spent DE the raw message becomes, and the canonical record's raw value."""
    headers = [("da-format", fmt.encode())]
    out = []
    for c in GEP(FakeMessage(json.dumps(raw).encode(), _headers=headers)):
        canonical = CanonicalEvent.decode(CODEC, c.value)
        for d in DEMUX(FakeMessage(c.value)):
            if d.topic.endswith(".timespent"):
                raw_ms = canonical.usage.metrics.time_spent_raw_ms if canonical.usage else None
                out.append((UsageEvent.decode(CODEC, d.value), raw_ms))
    [(de, raw_ms)] = out
    return de, -1 if raw_ms is None else raw_ms


def pairs() -> st.SearchStrategy[tuple[int, int]]:
    close = st.tuples(instant, near).map(lambda p: (p[0], p[0] + p[1]))
    anywhere = st.tuples(instant, instant)
    return st.one_of(close, anywhere).filter(lambda p: 946_684_800_000 <= p[1] < 4_102_444_800_000)


def expect(de: UsageEvent, raw_ms: int, start: int, end: int) -> None:
    spent, clamped = clamp(end - start)
    assert (de.value, de.clamped) == (spent, clamped)
    assert raw_ms == (end - start if clamped else -1)
    assert to_ms(de.occurred_at) == end


@settings(max_examples=200, deadline=None)
@given(pairs())
@example(FLOAT_LOSES_ONE)
def test_log_api_time_spent_is_end_minus_start(pair: tuple[int, int]) -> None:
    start, end = pair
    event = {
        "eventId": "e1",
        "eventName": "collection.resource.play",
        "startTime": start,
        "endTime": end,
        "user": {"gooruUId": "u1"},
        "context": {"type": "stop", "contentGooruId": "r1", "resourceType": "resource"},
    }
    expect(*timespent([event], "gooru.logapi"), start, end)


@settings(max_examples=200, deadline=None)
@given(pairs())
@example(FLOAT_LOSES_ONE)
def test_log_writer_time_spent_is_as_reported_under_the_clamp(pair: tuple[int, int]) -> None:
    start, end = pair
    event = {
        "eventId": "e1",
        "eventName": "resource.performance",
        "userId": "u1",
        "activityTime": end,
        "collectionId": "c1",
        "collectionType": "collection",
        "resourceId": "r1",
        "resourceType": "resource",
        "result": {"timeSpent": end - start},
    }
    expect(*timespent(event, "gooru.logwriter"), start, end)


@settings(max_examples=200, deadline=None)
@given(pairs(), st.integers(-12 * 60, 14 * 60), st.integers(-12 * 60, 14 * 60))
@example(FLOAT_LOSES_ONE, 120, -300)
def test_partner_time_spent_is_finished_minus_started(
    pair: tuple[int, int], offset_a: int, offset_b: int
) -> None:
    start, end = pair

    def iso(ms: int, minutes: int) -> str:
        return from_ms(ms).astimezone(timezone(timedelta(minutes=minutes))).isoformat()

    activity = {
        "partner": "edmobile",
        "activityId": "em-1",
        "learnerRef": "u1",
        "kind": "video",
        "itemRef": "r1",
        "startedAt": iso(start, offset_a),
        "finishedAt": iso(end, offset_b),
    }
    expect(*timespent(activity, "partner.edmobile"), start, end)


@settings(max_examples=200, deadline=None)
@given(instant)
def test_epoch_milliseconds_round_trip_exactly(ms: int) -> None:
    assert to_ms(from_ms(ms)) == ms
    assert to_ms(from_ms(ms) + timedelta(microseconds=999)) == ms  # below a ms: dropped


@settings(max_examples=200, deadline=None)
@given(pairs())
def test_fulfillment_time_in_state_is_whole_seconds_of_the_difference(
    pair: tuple[int, int],
) -> None:
    start, end = pair
    assert whole_seconds(from_ms(start), from_ms(end)) == max(0, (end - start) // 1000)
