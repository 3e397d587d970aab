"""Avro bodies of the plain canonical record, written directly instead of through fastavro.

GEP writes one canonical record per raw event. fastavro's writer is general: for each record it
walks the schema, resolves each union's branch and turns the record's dict into bytes, about 7.5
µs for a proctoring event, half of GEP's handler. Most events have one plain shape (no usage, no
system change, no impacts, attributes all text), and for it the bytes are a few strings and two
longs in a row: written here in about half the time.

Byte for byte what fastavro writes (``tests/unit/test_plain_avro.py`` holds the two side by
side, also on generated events). Anything else (another shape, a value of an unexpected type, a
timestamp out of range, text that is not UTF-8) returns None and the caller takes fastavro, which
also raises what fastavro raises. The fast path is taken only while the newest canonical schema
has the fields this writes, in this order (``writes_plain``): a new schema version turns it off
rather than writing the old layout.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common.codec import Codec, SchemaVersion

if TYPE_CHECKING:
    from common.events.canonical import CanonicalEvent

CANONICAL = "canonical"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The layout this module writes: field name and type, in the schema's order.
_LAYOUT = (
    ("event_id", "string"),
    ("source", "string"),
    ("event_type", "string"),
    ("entity_type", "string"),
    ("entity_id", "string"),
    ("occurred_at", "timestamp-micros"),
    ("received_at", "timestamp-micros"),
    ("actor_id", "null|string"),
    ("attributes", "map<string>"),
    ("usage", "null|record"),
    ("system", "null|record"),
    ("impacts", "array"),
)
# The end of the attributes (a block count of 0), usage null, system null, no impacts.
_TAIL = b"\x00\x00\x00\x00"
_SMALL = [bytes([(n << 1) ^ (n >> 63)]) for n in range(64)]  # zigzag of 0..63: one byte
# A varint 14 bits at a time (a timestamp's 52 bits take three steps and the end, not eight):
# two bytes that both say "more follows", and the last one or two bytes of a number.
_MORE = [bytes([(x & 0x7F) | 0x80, (x >> 7) | 0x80]) for x in range(1 << 14)]
_LAST = [bytes([x]) if x < 0x80 else bytes([(x & 0x7F) | 0x80, x >> 7]) for x in range(1 << 14)]
_LIMIT = 1 << 62  # a long written here stays well inside Avro's 64 bits
_checked: dict[int, tuple[SchemaVersion, bool]] = {}


def _kind(t: Any) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, list):
        return "|".join(_kind(b) if isinstance(b, str) else str(b.get("type")) for b in t)
    kind = str(t.get("type"))
    if kind == "long" and t.get("logicalType") == "timestamp-micros":
        return "timestamp-micros"
    if kind == "map":
        return f"map<{_kind(t.get('values'))}>"
    return kind


def writes_plain(codec: Codec) -> bool:
    """Whether the codec's newest canonical schema is the layout this module writes."""
    sv = codec.latest(CANONICAL)
    seen = _checked.get(id(sv))
    if seen is None or seen[0] is not sv:
        fields = tuple((f["name"], _kind(f["type"])) for f in sv.parsed["fields"])
        seen = _checked[id(sv)] = (sv, fields == _LAYOUT)
    return seen[1]


def _long(n: int) -> bytes:
    if 0 <= n < 64:
        return _SMALL[n]
    z = (n << 1) ^ (n >> 63)
    if z < 0x4000:
        return _LAST[z]
    out = []
    while z >= 0x4000:
        out.append(_MORE[z & 0x3FFF])
        z >>= 14
    out.append(_LAST[z])
    return b"".join(out)


def _micros(t: object) -> int | None:
    if type(t) is not datetime or t.tzinfo is None:
        return None
    d = t - _EPOCH
    micros = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    return micros if -_LIMIT < micros < _LIMIT else None


def canonical_body(e: CanonicalEvent) -> bytes | None:
    """The Avro body of ``e`` when it has the plain shape, else None."""
    if e.usage is not None or e.system is not None or e.impacts:
        return None
    occurred, received = _micros(e.occurred_at), _micros(e.received_at)
    if occurred is None or received is None:
        return None
    parts: list[bytes] = []
    add = parts.append
    try:
        for text in (e.event_id, e.source, e.event_type, e.entity_type, e.entity_id):
            if type(text) is not str:
                return None
            raw = text.encode()
            add(_long(len(raw)))
            add(raw)
        add(_long(occurred))
        add(_long(received))
        actor = e.actor_id
        if actor is None:
            add(b"\x00")
        elif type(actor) is str:
            raw = actor.encode()
            add(b"\x02")
            add(_long(len(raw)))
            add(raw)
        else:
            return None
        attributes = e.attributes
        if attributes:
            add(_long(len(attributes)))
            for k, v in attributes.items():
                if type(k) is not str or type(v) is not str:
                    return None
                raw, value = k.encode(), v.encode()
                add(_long(len(raw)))
                add(raw)
                add(_long(len(value)))
                add(value)
        add(_TAIL)
    except UnicodeEncodeError:  # a lone surrogate: fastavro decides what to say
        return None
    return b"".join(parts)
