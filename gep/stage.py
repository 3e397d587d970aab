"""GEP's handler: raw bytes in, canonical events out (or a dead letter)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from common.checks import too_deep
from common.codec import Codec
from common.deadletter import DEFAULT_MAX_BYTES, dead_letter, header
from common.errors import InvalidEvent
from common.names import FORMAT_HEADER, GEP
from common.runloop import Message
from common.topics import Topics
from common.transactional import Output
from gep.formats import BY_NAME, FORMATS, Format
from gep.formats.rejected import Rejected

STAGE = GEP
# Which element of a multi-event message a dead letter is about (0-based).
INDEX_HEADER = "da-index"


def detect(value: bytes | None) -> Format:
    """The format of a message that does not name one, by its shape."""
    if not value:
        raise InvalidEvent("empty", "the event has no body")
    try:
        obj = msgspec.json.decode(value or b"")
        for fmt in FORMATS:
            if fmt.looks_like(obj):
                return fmt
    except msgspec.DecodeError as exc:
        raise InvalidEvent("bad_json", str(exc)) from None
    except RecursionError:  # while decoding, or printing a deep value in ``looks_like``
        raise too_deep() from None
    raise InvalidEvent("unknown_format", "the event matches no known raw format")


class Gep:
    def __init__(
        self, topics: Topics, codec: Codec, max_message_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.topics = topics
        self.codec = codec
        self.max_bytes = max_message_bytes
        # Named once: a topic name is built by a few string operations, per message they count.
        self._canonical = topics.canonical
        self._dead_letters = topics.dead_letter(STAGE)

    def input_topics(self) -> list[str]:
        return [self.topics.ingest]

    def __call__(self, msg: Message) -> Sequence[Output]:
        named = header(msg.headers(), FORMAT_HEADER)
        if named is None:
            fmt = detect(msg.value())
        elif named in BY_NAME:
            fmt = BY_NAME[named]
        else:
            raise InvalidEvent("unknown_format", f"no GEP format named {named!r}")
        out = []
        now = datetime.now(UTC)
        parsed = (
            fmt.parse(msg.value(), now)
            if fmt.parse_message is None
            else fmt.parse_message(msg, now)
        )
        for e in parsed:
            if isinstance(e, Rejected):
                # The rest of the message goes on; this element's dead letter keeps the original
                # message bytes and says which element it was.
                index = [(INDEX_HEADER, str(e.index).encode())]
                dl = dead_letter(STAGE, msg, e.error, extra=index, max_bytes=self.max_bytes)
                out.append(Output(self._dead_letters, dl.key, dl.value or b"", dl.headers))
            else:
                out.append(Output(self._canonical, e.entity_id.encode(), e.encode(self.codec)))
        return out
