"""GEP's handler: raw bytes in, one canonical event out (or a dead letter)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from common.codec import Codec
from common.deadletter import header
from common.errors import InvalidEvent
from common.runloop import Message
from common.topics import Topics
from common.transactional import Output
from gep.formats import proctoring

STAGE = "gep"
FORMAT_HEADER = "da-format"


class Gep:
    def __init__(self, topics: Topics, codec: Codec) -> None:
        self.topics = topics
        self.codec = codec

    def input_topics(self) -> list[str]:
        return [self.topics.ingest]

    def __call__(self, msg: Message) -> Sequence[Output]:
        fmt = header(msg.headers(), FORMAT_HEADER)
        if fmt not in (None, proctoring.FORMAT):
            raise InvalidEvent("unknown_format", f"no GEP format named {fmt!r}")
        row = proctoring.decode(msg.value())
        if fmt is None and not proctoring.looks_like(set(row)):
            raise InvalidEvent("unknown_format", "the event matches no known raw format")
        event = proctoring.to_canonical(row, datetime.now(UTC))
        return [Output(self.topics.canonical, event.entity_id.encode(), event.encode(self.codec))]
