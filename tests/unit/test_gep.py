from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import CanonicalEvent
from common.topics import Topics
from gep.stage import Gep
from tests.fakes import FakeMessage

ROW = {
    "id": "314999316",
    "type": "Event::Welcome",
    "fulfillment_id": "15729184",
    "created_at": "2020-01-18 08:10:33.208545",
    "created_by_id": "2374769",
    "ip_address": "67.102.159.103",
}
CODEC = Codec()
GEP = Gep(Topics("ns"), CODEC)


def run(row: object, headers: list[tuple[str, bytes]] | None = None) -> CanonicalEvent:
    out = GEP(FakeMessage(json.dumps(row).encode(), _headers=headers))
    assert len(out) == 1 and out[0].topic == "ns.org.gooru.da.canonical"
    assert out[0].key == b"15729184"
    return CanonicalEvent.decode(CODEC, out[0].value)


def test_valid_row_becomes_a_canonical_event() -> None:
    event = run(ROW, [("da-format", b"proctoring.csv")])
    assert event.event_id == "314999316" and event.event_type == "Event::Welcome"
    assert event.entity_type == "fulfillment" and event.entity_id == "15729184"
    assert event.occurred_at == datetime(2020, 1, 18, 8, 10, 33, 208545, tzinfo=UTC)
    assert event.actor_id == "2374769"
    assert event.attributes == {"ip_address": "67.102.159.103"}


@pytest.mark.parametrize(
    "created_at,expected",
    [
        ("2020-01-18 08:10:33", datetime(2020, 1, 18, 8, 10, 33, tzinfo=UTC)),
        ("2020-01-18T08:10:33.5", datetime(2020, 1, 18, 8, 10, 33, 500000, tzinfo=UTC)),
        ("2020-01-18 10:10:33+02:00", datetime(2020, 1, 18, 8, 10, 33, tzinfo=UTC)),
    ],
)
def test_timestamps_with_or_without_microseconds(created_at: str, expected: datetime) -> None:
    assert run({**ROW, "created_at": created_at}).occurred_at == expected


def test_integer_ids_are_accepted_as_text() -> None:
    event = run({**ROW, "id": 314999316, "fulfillment_id": 15729184})
    assert (event.event_id, event.entity_id) == ("314999316", "15729184")


def test_missing_actor_is_none() -> None:
    assert run({**ROW, "created_by_id": ""}).actor_id is None


@pytest.mark.parametrize(
    "value,reason,field",
    [
        (b"", "empty", None),
        (b"not json", "bad_json", None),
        (b"[1, 2]", "unknown_format", None),
        (b'{"a": {"b": 1}}', "unknown_format", None),
        (json.dumps({**ROW, "id": ""}).encode(), "missing_field", "id"),
        (
            json.dumps({k: v for k, v in ROW.items() if k != "created_at"}).encode(),
            "missing_field",
            "created_at",
        ),
        (
            json.dumps({**ROW, "created_at": "18/01/2020 08:10"}).encode(),
            "bad_timestamp",
            "created_at",
        ),
        (json.dumps({**ROW, "type": "Welcome!"}).encode(), "bad_event_type", "type"),
        (json.dumps({**ROW, "id": "1\u0000"}).encode(), "bad_value", "id"),
        (json.dumps({**ROW, "ip_address": "a\u0000b"}).encode(), "bad_value", "ip_address"),
        (json.dumps({**ROW, "fulfillment_id": 1.5}).encode(), "bad_type", "fulfillment_id"),
        (json.dumps({"session_id": "x", "name": "pageview"}).encode(), "unknown_format", None),
    ],
)
def test_invalid_events_get_a_typed_reason(value: bytes, reason: str, field: str | None) -> None:
    with pytest.raises(InvalidEvent) as info:
        GEP(FakeMessage(value))
    assert info.value.reason == reason
    assert info.value.field == field


@pytest.mark.parametrize("value", [b"[1, 2]", b'{"fulfillment_id": {"b": 1}}'])
def test_a_named_format_reports_its_own_reason(value: bytes) -> None:
    with pytest.raises(InvalidEvent) as info:
        GEP(FakeMessage(value, _headers=[("da-format", b"proctoring.csv")]))
    assert info.value.reason == "not_flat_object"


def test_unknown_format_header_is_rejected() -> None:
    with pytest.raises(InvalidEvent) as info:
        GEP(FakeMessage(json.dumps(ROW).encode(), _headers=[("da-format", b"edmobile.v9")]))
    assert info.value.reason == "unknown_format"
