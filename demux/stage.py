"""demux's handler: one canonical event in, its discrete events out."""

from __future__ import annotations

import re
from collections.abc import Sequence

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import CanonicalEvent, FulfillmentEvent, Lineage
from common.runloop import Message
from common.topics import Topics
from common.transactional import Output

STAGE = "demux"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def fulfillment_action(event_type: str) -> str:
    """``Event::LaunchStart`` -> ``launch_start``: the action part of the DE name."""
    name = event_type.rsplit("::", 1)[-1]
    action = _CAMEL.sub("_", name).lower()
    if not action.isidentifier():
        raise InvalidEvent(
            "bad_event_type", f"cannot name a DE after {event_type!r}", field="event_type"
        )
    return action


class Demux:
    # Buckets this stage writes to, for `da topics ensure`.
    SINK_BUCKETS = ("fulfillment",)

    def __init__(self, topics: Topics, codec: Codec) -> None:
        self.topics = topics
        self.codec = codec

    def input_topics(self) -> list[str]:
        return [self.topics.canonical]

    def __call__(self, msg: Message) -> Sequence[Output]:
        event = CanonicalEvent.decode(self.codec, msg.value())
        if event.entity_type == "fulfillment":
            return [self._fulfillment(event)]
        raise InvalidEvent(
            "unknown_entity", f"no discrete events for {event.entity_type!r}", field="entity_type"
        )

    def _fulfillment(self, event: CanonicalEvent) -> Output:
        de = FulfillmentEvent(
            name=f"fulfillment.{fulfillment_action(event.event_type)}",
            event_id=event.event_id,
            fulfillment_id=event.entity_id,
            event_type=event.event_type,
            occurred_at=event.occurred_at,
            lineage=Lineage(root_event_id=event.event_id, stages=("gep", STAGE), hops=1),
            actor_id=event.actor_id,
            attributes=event.attributes,
        )
        return Output(
            self.topics.sink("demux", de.name),
            de.fulfillment_id.encode(),
            de.encode(self.codec),
            [("da-de-name", de.name.encode())],
        )
