"""Proctoring: each canonical fulfillment event becomes one system DE ``fulfillment.<action>``."""

from __future__ import annotations

import functools
import re

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import FULFILLMENT_DE, CanonicalEvent, FulfillmentEvent, Lineage
from demux.rules import DiscreteEvent

ENTITY = "fulfillment"
BUCKETS = (("demux", "fulfillment"),)
SCHEMA = FULFILLMENT_DE
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@functools.lru_cache(maxsize=1024)  # a handful of event types, each seen over and over
def action(event_type: str) -> str:
    """``Event::LaunchStart`` -> ``launch_start``: the action part of the DE name."""
    name = event_type.rsplit("::", 1)[-1]
    act = _CAMEL.sub("_", name).lower()
    if not act.isidentifier():
        raise InvalidEvent(
            "bad_event_type", f"cannot name a DE after {event_type!r}", field="event_type"
        )
    return act


def fan_out(event: CanonicalEvent, codec: Codec, stage: str) -> list[DiscreteEvent]:
    de = FulfillmentEvent(
        name=f"fulfillment.{action(event.event_type)}",
        event_id=event.event_id,
        fulfillment_id=event.entity_id,
        event_type=event.event_type,
        occurred_at=event.occurred_at,
        lineage=Lineage(root_event_id=event.event_id, stages=("gep", stage), hops=1),
        actor_id=event.actor_id,
        attributes=event.attributes,
    )
    return [DiscreteEvent(de.name, de.fulfillment_id, de.encode(codec))]
