"""The learning events round-trip through the codec as typed values, and canonical v1 records
(written before v2 existed) still decode."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from fastavro import parse_schema, schemaless_writer

from common.codec import SCHEMAS_DIR, Codec, SchemaVersion
from common.events import (
    CanonicalEvent,
    Impact,
    Lineage,
    SystemChange,
    SystemEvent,
    Usage,
    UsageEvent,
    UsageMetrics,
)

CODEC = Codec()
AT = datetime(2020, 9, 13, 12, 0, tzinfo=UTC)
LINEAGE = Lineage("e1", ("gep", "demux"), 1)


def test_canonical_usage_event_round_trips() -> None:
    event = CanonicalEvent(
        "e1",
        "gooru.logapi",
        "resource.play",
        "usage",
        "u1",
        AT,
        AT,
        "u1",
        {},
        Usage("u1", "r1", "resource", "stop", metrics=UsageMetrics(time_spent_ms=5, views=0)),
        None,
        (Impact("resource", "timespent"),),
    )
    assert CanonicalEvent.decode(CODEC, event.encode(CODEC)) == event


def test_canonical_system_event_round_trips() -> None:
    event = CanonicalEvent(
        "s1",
        "gooru.system",
        "content.created",
        "content",
        "c1",
        AT,
        AT,
        system=SystemChange("created", "assessment", None, ("K1", "K2")),
    )
    assert CanonicalEvent.decode(CODEC, event.encode(CODEC)) == event


def test_a_v1_record_decodes_with_the_v2_defaults() -> None:
    raw = json.loads((SCHEMAS_DIR / "canonical" / "v1.avsc").read_text())
    buf = io.BytesIO()
    buf.write(next(sv for sv in _versions("canonical") if sv.version == 1).header)
    record = {
        "event_id": "1",
        "source": "proctoring.csv",
        "event_type": "Event::Welcome",
        "entity_type": "fulfillment",
        "entity_id": "f1",
        "occurred_at": AT,
        "received_at": AT,
        "actor_id": None,
        "attributes": {},
    }
    schemaless_writer(buf, parse_schema(raw), record)
    event = CanonicalEvent.decode(CODEC, buf.getvalue())
    assert (event.usage, event.system, event.impacts) == (None, None, ())
    assert event.entity_id == "f1"


def _versions(name: str) -> list[SchemaVersion]:
    # The codec keeps every version by header; only the tests need to list them.
    return [sv for sv in CODEC._by_header.values() if sv.name == name]


def test_usage_de_round_trips_and_names_its_identity_and_key() -> None:
    de = UsageEvent("usage.question.score", "e1", "u1", "q1", AT, 100.0, LINEAGE, class_id="k")
    back = UsageEvent.decode(CODEC, de.encode(CODEC))
    assert back == de
    assert back.identity == ("e1", "usage.question.score")
    assert back.key == "u1|q1"
    assert back.context == ("k", "", "", "")


def test_system_de_round_trips() -> None:
    de = SystemEvent("content.updated", "s1", "c1", AT, LINEAGE, competencies=("K1",))
    back = SystemEvent.decode(CODEC, de.encode(CODEC))
    assert back == de and (back.entity, back.action) == ("content", "updated")
