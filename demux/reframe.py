"""The proctoring fast path: a canonical fulfillment record re-framed as its DE, not decoded.

A fulfillment DE carries the canonical event's own fields (event id, entity id, event type, event
time, actor, attributes) plus its name and lineage; in Avro's binary form each of those fields is
the same bytes in both records. Decoding the canonical record into Python objects and encoding the
DE from them was the whole of the demux's time for proctoring. Here the record is walked once,
each field checked as fastavro checks it on reading (lengths, UTF-8, a timestamp a datetime can
hold), and the DE is put together from slices of it.

Only the shape GEP writes for proctoring is taken: the newest canonical schema, entity type
``fulfillment``, attributes in one map block without a repeated key, no usage, no system change,
no impacts, nothing after them, every number in its shortest form. Anything else returns None and
goes the full way (decode, fan out, encode), which also dead-letters what is corrupt. What this
returns is byte for byte what the full way writes (``tests/unit/test_demux_reframe.py`` holds
the two side by side, on valid and on damaged records).
"""

from __future__ import annotations

from common.codec import Codec
from common.events import CANONICAL, FULFILLMENT_DE
from common.events.plain import NotPlain, read_long, read_text, text_bytes, time_end
from demux import fulfillment
from demux.rules import DiscreteEvent

# What GEP writes after the attributes of a proctoring event: usage null, system null, no impacts.
_TAIL = b"\x00\x00\x00"


class Reframer:
    """Builds once what every DE of one stage shares (framing, lineage), per event type its name."""

    def __init__(self, codec: Codec, stage: str) -> None:
        self.codec = codec
        # Lineage: stages ["gep", stage] (one block of 2, then 0), hops 1.
        stages = b"".join(text_bytes(s) for s in ("gep", stage))
        self.lineage_tail = b"\x04" + stages + b"\x00\x02"
        self._names: dict[str, tuple[str, bytes]] = {}

    def __call__(self, data: bytes | None) -> DiscreteEvent | None:
        """The DE of a plain proctoring record, or None to take the full way."""
        if data is None:
            return None
        start = self.codec.newest_body(CANONICAL, data)
        if start is None:
            return None
        try:
            return self._reframe(data, start)
        except (NotPlain, IndexError):
            return None

    def _reframe(self, data: bytes, pos: int) -> DiscreteEvent | None:
        event_id = pos
        pos = read_text(data, pos)[1]
        event_id_bytes = data[event_id:pos]
        pos = read_text(data, pos)[1]  # source
        event_type_at = pos
        event_type, pos = read_text(data, pos)
        event_type_bytes = data[event_type_at:pos]
        entity_type, pos = read_text(data, pos)
        if entity_type != fulfillment.ENTITY:
            return None
        entity_at = pos
        entity_id, pos = read_text(data, pos)
        entity_bytes = data[entity_at:pos]
        occurred_at = pos
        pos = time_end(data, pos)
        occurred_bytes = data[occurred_at:pos]
        pos = time_end(data, pos)  # received_at
        actor_at = pos
        branch, pos = read_long(data, pos)
        if branch == 1:
            pos = read_text(data, pos)[1]
        elif branch != 0:
            raise NotPlain
        actor_bytes = data[actor_at:pos]
        attributes_at = pos
        count, pos = read_long(data, pos)
        if count < 0:  # a block with its byte size: not what fastavro writes
            raise NotPlain
        if count:
            keys = set()
            for _ in range(count):
                key, pos = read_text(data, pos)
                keys.add(key)
                pos = read_text(data, pos)[1]
            if len(keys) != count or data[pos] != 0:  # a repeated key, or a second block
                raise NotPlain
            pos += 1
        if data[pos:] != _TAIL:
            raise NotPlain
        attributes_bytes = data[attributes_at:pos]
        name, name_bytes = self._name(event_type)
        value = b"".join(
            (
                self.codec.header(FULFILLMENT_DE),  # a dict look-up (the registry asked once)
                name_bytes,
                event_id_bytes,
                entity_bytes,
                event_type_bytes,
                occurred_bytes,
                actor_bytes,
                attributes_bytes,
                event_id_bytes,  # lineage.root_event_id
                self.lineage_tail,
            )
        )
        return DiscreteEvent(name, entity_id, value)

    def _name(self, event_type: str) -> tuple[str, bytes]:
        named = self._names.get(event_type)
        if named is None:
            name = f"{fulfillment.ENTITY}.{fulfillment.action(event_type)}"  # may be InvalidEvent
            named = (name, text_bytes(name))
            self._names[event_type] = named
        return named
