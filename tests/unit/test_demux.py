from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import CanonicalEvent, FulfillmentEvent
from common.topics import Topics
from demux.fulfillment import action as fulfillment_action
from demux.stage import Demux
from tests.fakes import FakeMessage

CODEC = Codec()
AT = datetime(2020, 1, 18, 13, 5, 54, tzinfo=UTC)


def canonical(event_type: str = "Event::LaunchStart", entity_type: str = "fulfillment") -> bytes:
    return CanonicalEvent(
        "e1",
        "proctoring.csv",
        event_type,
        entity_type,
        "15905113",
        AT,
        AT,
        "u1",
        {"ip_address": "10.0.0.1"},
    ).encode(CODEC)


def test_fulfillment_event_becomes_one_system_de() -> None:
    out = Demux(Topics(), CODEC)(FakeMessage(canonical()))
    assert len(out) == 1
    assert out[0].topic == "org.gooru.da.sink.demux.fulfillment"
    assert out[0].key == b"15905113"
    de = FulfillmentEvent.decode(CODEC, out[0].value)
    assert de.name == "fulfillment.launch_start"
    assert (de.event_id, de.fulfillment_id, de.occurred_at, de.actor_id) == (
        "e1",
        "15905113",
        AT,
        "u1",
    )
    assert de.attributes == {"ip_address": "10.0.0.1"}
    assert de.lineage.root_event_id == "e1" and de.lineage.stages == ("gep", "demux")


@pytest.mark.parametrize(
    "etype,action",
    [
        ("Event::LmiConnected", "lmi_connected"),
        ("Event::FulfillmentEnded", "fulfillment_ended"),
        ("Event::Welcome", "welcome"),
    ],
)
def test_action_names(etype: str, action: str) -> None:
    assert fulfillment_action(etype) == action


def test_not_avro_is_invalid() -> None:
    with pytest.raises(InvalidEvent) as info:
        Demux(Topics(), CODEC)(FakeMessage(b'{"json": true}'))
    assert info.value.reason == "not_avro"


def test_unknown_entity_is_invalid() -> None:
    with pytest.raises(InvalidEvent) as info:
        Demux(Topics(), CODEC)(FakeMessage(canonical(entity_type="spaceship")))
    assert info.value.reason == "unknown_entity"


def test_a_question_stop_becomes_one_de_per_metric_keyed_by_learner_and_content() -> None:
    from common.events import Impact, Usage, UsageEvent, UsageMetrics

    usage = Usage(
        "u1",
        "q1",
        "question",
        "stop",
        collection_id="a1",
        collection_type="assessment",
        class_id="k1",
        session_id="s1",
        metrics=UsageMetrics(time_spent_ms=7_200_000, time_spent_raw_ms=9_000_000, score=100.0),
    )
    event = CanonicalEvent(
        "e9",
        "gooru.logapi",
        "collection.resource.play.stop",
        "usage",
        "u1",
        AT,
        AT,
        usage=usage,
        impacts=(Impact("question", "timespent"), Impact("question", "score")),
    )
    out = Demux(Topics(), CODEC)(FakeMessage(event.encode(CODEC)))
    assert [o.topic for o in out] == [
        "org.gooru.da.sink.demux.question.timespent",
        "org.gooru.da.sink.demux.question.score",
    ]
    assert {o.key for o in out} == {b"u1|q1"}
    spent, score = (UsageEvent.decode(CODEC, o.value) for o in out)
    assert (spent.value, spent.clamped, score.value, score.clamped) == (7_200_000, True, 100, False)
    assert score.lineage.root_event_id == "e9" and score.lineage.hops == 1
    assert (score.class_id, score.collection_id, score.session_id) == ("k1", "a1", "s1")


def test_a_content_change_becomes_a_system_de_on_the_content_bucket() -> None:
    from common.events import SystemChange, SystemEvent

    event = CanonicalEvent(
        "s1",
        "gooru.system",
        "content.updated",
        "content",
        "a1",
        AT,
        AT,
        system=SystemChange("updated", "assessment", None, ("K1",)),
    )
    [out] = Demux(Topics(), CODEC)(FakeMessage(event.encode(CODEC)))
    assert (out.topic, out.key) == ("org.gooru.da.sink.demux.content", b"a1")
    de = SystemEvent.decode(CODEC, out.value)
    assert (de.name, de.competencies, de.content_type) == ("content.updated", ("K1",), "assessment")


def test_an_impact_without_a_de_is_invalid() -> None:
    from common.events import Impact, Usage

    event = CanonicalEvent(
        "e1",
        "gooru.logapi",
        "x",
        "usage",
        "u1",
        AT,
        AT,
        usage=Usage("u1", "r1", "resource", "stop"),
        impacts=(Impact("resource", "timespent"),),  # no time spent in the metrics
    )
    with pytest.raises(InvalidEvent) as info:
        Demux(Topics(), CODEC)(FakeMessage(event.encode(CODEC)))
    assert info.value.reason == "unknown_impact"
