"""Web sessions: each posted event becomes one system DE ``web.event``, keyed by its
session so that a DEP sees a session's events in the order they were posted."""

from __future__ import annotations

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import CanonicalEvent, Lineage
from common.web_event import WEB_DE, WEB_DE_NAME, WebEventDE
from common.web_post import ENTITY
from demux.rules import DiscreteEvent

BUCKETS = (("demux", "web"),)
SCHEMA = WEB_DE


def fan_out(event: CanonicalEvent, codec: Codec, stage: str) -> list[DiscreteEvent]:
    attrs = event.attributes
    if event.actor_id is None or "category" not in attrs or "name" not in attrs:
        raise InvalidEvent("bad_web_event", "a web event needs its app, category and name")
    de = WebEventDE(
        event_id=event.event_id,
        session_id=event.entity_id,
        app=event.actor_id,
        category=attrs["category"],
        event_name=attrs["name"],
        occurred_at=event.occurred_at,
        received_at=event.received_at,
        data=attrs.get("data", "{}"),
        lineage=Lineage(root_event_id=event.event_id, stages=("gep", stage), hops=1),
    )
    return [DiscreteEvent(WEB_DE_NAME, de.session_id, de.encode(codec))]


__all__ = ["BUCKETS", "ENTITY", "SCHEMA", "fan_out"]
