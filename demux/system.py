"""Core-system changes: each becomes one system DE ``<entity>.<action>`` on the entity's bucket,
keyed by the entity, so its changes stay in order."""

from __future__ import annotations

from common.codec import Codec
from common.errors import InvalidEvent
from common.events import SYSTEM_DE, CanonicalEvent, Lineage, SystemEvent
from common.topics import Source
from demux.rules import DiscreteEvent

ENTITIES = ("content", "class", "user")
BUCKETS: tuple[tuple[Source, str], ...] = tuple(("demux", e) for e in ENTITIES)
SCHEMA = SYSTEM_DE


def fan_out(event: CanonicalEvent, codec: Codec, stage: str) -> list[DiscreteEvent]:
    change = event.system
    if change is None:
        raise InvalidEvent("missing_system", "a system event without its change", field="system")
    de = SystemEvent(
        name=f"{event.entity_type}.{change.action}",
        event_id=event.event_id,
        entity_id=event.entity_id,
        occurred_at=event.occurred_at,
        lineage=Lineage(root_event_id=event.event_id, stages=("gep", stage), hops=1),
        actor_id=event.actor_id,
        content_type=change.content_type,
        parent_id=change.parent_id,
        competencies=change.competencies,
        attributes=event.attributes,
    )
    return [DiscreteEvent(de.name, de.entity_id, de.encode(codec))]
