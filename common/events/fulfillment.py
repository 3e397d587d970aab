"""System DE ``fulfillment.<action>`` of the proctoring domain (``schemas/de/fulfillment``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec

from common.codec import Codec
from common.events.canonical import Lineage
from common.events.plain import NotPlain, fulfillment_fields

FULFILLMENT_DE = "de/fulfillment"


class FulfillmentEvent(msgspec.Struct, frozen=True):
    """System DE ``fulfillment.<action>``."""

    name: str
    event_id: str
    fulfillment_id: str
    event_type: str
    occurred_at: datetime
    lineage: Lineage
    actor_id: str | None = None
    attributes: Mapping[str, str] = msgspec.field(default_factory=dict)

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
        # Read directly when written with the newest schema (``common.events.plain``, what
        # fastavro reads, in about half the time); anything else, fastavro's way.
        if data is not None and (start := codec.newest_body(FULFILLMENT_DE, data)) is not None:
            try:
                name, eid, fid, etype, at, actor, attributes, root, stages, hops = (
                    fulfillment_fields(data, start)
                )
                return cls(
                    name, eid, fid, etype, at, Lineage(root, stages, hops), actor, attributes
                )
            except (NotPlain, IndexError):
                pass
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
