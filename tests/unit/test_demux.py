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
