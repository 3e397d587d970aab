"""The typed discrete event ``web.event`` (``schemas/de/web``): what the demux makes of a posted
web or mobile event and what the ``web-events`` DEP stores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from common.codec import Codec
from common.events import Lineage

WEB_DE = "de/web"
WEB_DE_NAME = "web.event"


@dataclass(frozen=True, slots=True)
class WebEventDE:
    event_id: str
    session_id: str
    app: str
    category: str
    event_name: str
    occurred_at: datetime
    received_at: datetime
    data: str  # the payload as a JSON object text; the DEP stores it as jsonb
    lineage: Lineage

    def encode(self, codec: Codec) -> bytes:
        return codec.encode(
            WEB_DE,
            {
                "name": WEB_DE_NAME,
                "event_id": self.event_id,
                "session_id": self.session_id,
                "app": self.app,
                "category": self.category,
                "event_name": self.event_name,
                "occurred_at": self.occurred_at,
                "received_at": self.received_at,
                "data": self.data,
                "lineage": self.lineage.to_avro(),
            },
        )

    @classmethod
    def decode(cls, codec: Codec, data: bytes | None) -> WebEventDE:
        r = codec.decode(WEB_DE, data)
        return cls(
            r["event_id"],
            r["session_id"],
            r["app"],
            r["category"],
            r["event_name"],
            r["occurred_at"],
            r["received_at"],
            r["data"],
            Lineage.from_avro(r["lineage"]),
        )
