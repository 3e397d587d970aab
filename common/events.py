"""Typed events at the stage boundaries, and their Avro records (see ``schemas/``).

Stages hand these frozen dataclasses to each other's code; dicts exist only inside the codec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.codec import Codec

CANONICAL = "canonical"
FULFILLMENT_DE = "de/fulfillment"


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a DE came from: the root raw event, the stages it passed, how many DE hops."""

    root_event_id: str
    stages: tuple[str, ...]
    hops: int

    def to_avro(self) -> dict[str, Any]:
        return {"root_event_id": self.root_event_id, "stages": list(self.stages), "hops": self.hops}

    @classmethod
    def from_avro(cls, r: Mapping[str, Any]) -> Lineage:
        return cls(r["root_event_id"], tuple(r["stages"]), r["hops"])


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    event_id: str
    source: str
    event_type: str
    entity_type: str
    entity_id: str
    occurred_at: datetime
    received_at: datetime
    actor_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def encode(self, codec: Codec) -> bytes:
        return codec.encode(
            CANONICAL,
            {
                "event_id": self.event_id,
                "source": self.source,
                "event_type": self.event_type,
                "entity_type": self.entity_type,
                "entity_id": self.entity_id,
                "occurred_at": self.occurred_at,
                "received_at": self.received_at,
                "actor_id": self.actor_id,
                "attributes": dict(self.attributes),
            },
        )

    @classmethod
    def decode(cls, codec: Codec, data: bytes | None) -> CanonicalEvent:
        r = codec.decode(CANONICAL, data)
        return cls(
            r["event_id"],
            r["source"],
            r["event_type"],
            r["entity_type"],
            r["entity_id"],
            r["occurred_at"],
            r["received_at"],
            r["actor_id"],
            r["attributes"],
        )


@dataclass(frozen=True, slots=True)
class FulfillmentEvent:
    """System DE ``fulfillment.<action>``."""

    name: str
    event_id: str
    fulfillment_id: str
    event_type: str
    occurred_at: datetime
    lineage: Lineage
    actor_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def encode(self, codec: Codec) -> bytes:
        return codec.encode(
            FULFILLMENT_DE,
            {
                "name": self.name,
                "event_id": self.event_id,
                "fulfillment_id": self.fulfillment_id,
                "event_type": self.event_type,
                "occurred_at": self.occurred_at,
                "actor_id": self.actor_id,
                "attributes": dict(self.attributes),
                "lineage": self.lineage.to_avro(),
            },
        )

    @classmethod
    def decode(cls, codec: Codec, data: bytes | None) -> FulfillmentEvent:
        r = codec.decode(FULFILLMENT_DE, data)
        return cls(
            r["name"],
            r["event_id"],
            r["fulfillment_id"],
            r["event_type"],
            r["occurred_at"],
            Lineage.from_avro(r["lineage"]),
            r["actor_id"],
            r["attributes"],
        )
