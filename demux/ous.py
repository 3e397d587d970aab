"""OUS workflow commands: each becomes one system DE ``ous.<operation>`` (``-`` written ``_``,
as DE names are dotted lower-case words: ``ous.set_state``) on ``org.gooru.da.sink.demux.ous``,
keyed by OUS UID, so one OUS's commands stay in the order they were logged."""

from __future__ import annotations

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import SYSTEM_DE, CanonicalEvent, Lineage, SystemEvent
from common.topics import Source
from demux.rules import DiscreteEvent

ENTITY = "ous"
BUCKETS: tuple[tuple[Source, str], ...] = (("demux", ENTITY),)
SCHEMA = SYSTEM_DE


def de_name(operation: str) -> str:
    return f"{ENTITY}.{operation.replace('-', '_')}"


def fan_out(event: CanonicalEvent, codec: Codec, stage: str) -> list[DiscreteEvent]:
    operation = event.attributes.get("operation")
    if not operation:
        raise InvalidEvent(
            "missing_field", "an OUS command without its operation", field="operation"
        )
    de = SystemEvent(
        name=de_name(operation),
        event_id=event.event_id,
        entity_id=event.entity_id,
        occurred_at=event.occurred_at,
        lineage=Lineage(root_event_id=event.event_id, stages=("gep", stage), hops=1),
        actor_id=event.actor_id,
        attributes=event.attributes,
    )
    return [DiscreteEvent(de.name, de.entity_id, de.encode(codec))]
