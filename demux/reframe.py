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
from demux import fulfillment
from demux.rules import DiscreteEvent

# What GEP writes after the attributes of a proctoring event: usage null, system null, no impacts.
_TAIL = b"\x00\x00\x00"
# A timestamp of at most 8 varint bytes is within 2**55 µs (about 1,100 years) of 1970: one a
# datetime holds. Longer ones take the full way, which decides.
_MAX_TIME_BYTES = 8


class _NotPlain(Exception):
    """The record is not of the plain shape: take the full way."""


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos``: its value and where it ends."""
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    n, shift, pos = b & 0x7F, 7, pos + 1
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise _NotPlain
    if b == 0:  # an overlong form: the full way would write it shorter
        raise _NotPlain
    return (n >> 1) ^ -(n & 1), pos


def _text(data: bytes, pos: int) -> tuple[str, int]:
    """A string at ``pos``: its text and where it ends."""
    b = data[pos]
    if b < 0x80 and not b & 1:  # most strings: shorter than 64 bytes, a one-byte length
        start, end = pos + 1, pos + 1 + (b >> 1)
        if end > len(data):
            raise _NotPlain
    else:
        size, start = _long(data, pos)
        end = start + size
        if size < 0 or end > len(data):
            raise _NotPlain
    try:
        return data[start:end].decode(), end
    except UnicodeDecodeError:
        raise _NotPlain from None


def _time(data: bytes, pos: int) -> int:
    end = _long(data, pos)[1]
    if end - pos > _MAX_TIME_BYTES:
        raise _NotPlain
    return end


class Reframer:
    """Builds once what every DE of one stage shares (framing, lineage), per event type its name."""

    def __init__(self, codec: Codec, stage: str) -> None:
        self.codec = codec
        # Lineage: stages ["gep", stage] (one block of 2, then 0), hops 1.
        stages = b"".join(_string(s) for s in ("gep", stage))
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
        except (_NotPlain, IndexError):
            return None

    def _reframe(self, data: bytes, pos: int) -> DiscreteEvent | None:
        event_id = pos
        pos = _text(data, pos)[1]
        event_id_bytes = data[event_id:pos]
        pos = _text(data, pos)[1]  # source
        event_type_at = pos
        event_type, pos = _text(data, pos)
        event_type_bytes = data[event_type_at:pos]
        entity_type, pos = _text(data, pos)
        if entity_type != fulfillment.ENTITY:
            return None
        entity_at = pos
        entity_id, pos = _text(data, pos)
        entity_bytes = data[entity_at:pos]
        occurred_at = pos
        pos = _time(data, pos)
        occurred_bytes = data[occurred_at:pos]
        pos = _time(data, pos)  # received_at
        actor_at = pos
        branch, pos = _long(data, pos)
        if branch == 1:
            pos = _text(data, pos)[1]
        elif branch != 0:
            raise _NotPlain
        actor_bytes = data[actor_at:pos]
        attributes_at = pos
        count, pos = _long(data, pos)
        if count < 0:  # a block with its byte size: not what fastavro writes
            raise _NotPlain
        if count:
            keys = set()
            for _ in range(count):
                key, pos = _text(data, pos)
                keys.add(key)
                pos = _text(data, pos)[1]
            if len(keys) != count or data[pos] != 0:  # a repeated key, or a second block
                raise _NotPlain
            pos += 1
        if data[pos:] != _TAIL:
            raise _NotPlain
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
            named = (name, _string(name))
            self._names[event_type] = named
        return named


def _string(text: str) -> bytes:
    raw = text.encode()
    return _zigzag(len(raw)) + raw


def _zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)
