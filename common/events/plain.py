"""Avro bodies of the plain shapes, written and read directly instead of through fastavro.

Avro's binary form of a record is its fields one after the other: a string is its length (a
zigzag varint) and its UTF-8 bytes, a long a zigzag varint, a union its branch then the value, a
map or array blocks of a count and items, ended by a count of 0. The primitives here read and
write those; ``demux.reframe`` builds a DE from slices of a canonical record with them.

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

from datetime import UTC, datetime, timedelta
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


class NotPlain(Exception):
    """Not the plain shape (or not what fastavro writes): take fastavro's way, which decides."""


# A timestamp of at most 8 varint bytes is within 2**55 µs (about 1,100 years) of 1970: one a
# datetime holds. Longer ones take fastavro's way.
_MAX_TIME_BYTES = 8


def read_long(data: bytes, pos: int) -> tuple[int, int]:
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
            raise NotPlain
    if b == 0:  # an overlong form: fastavro would write it shorter
        raise NotPlain
    return (n >> 1) ^ -(n & 1), pos


def read_text(data: bytes, pos: int) -> tuple[str, int]:
    """A string at ``pos``: its text and where it ends."""
    b = data[pos]
    if b < 0x80 and not b & 1:  # most strings: shorter than 64 bytes, a one-byte length
        start, end = pos + 1, pos + 1 + (b >> 1)
        if end > len(data):
            raise NotPlain
    else:
        size, start = read_long(data, pos)
        end = start + size
        if size < 0 or end > len(data):
            raise NotPlain
    try:
        return data[start:end].decode(), end
    except UnicodeDecodeError:
        raise NotPlain from None


def time_end(data: bytes, pos: int) -> int:
    """Where the timestamp at ``pos`` ends; one a datetime might not hold is not plain."""
    return read_time_micros(data, pos)[1]


def read_time_micros(data: bytes, pos: int) -> tuple[int, int]:
    micros, end = read_long(data, pos)
    if end - pos > _MAX_TIME_BYTES:
        raise NotPlain
    return micros, end


def read_time(data: bytes, pos: int) -> tuple[datetime, int]:
    """A timestamp-micros at ``pos``, as fastavro reads it: UTC."""
    micros, end = read_time_micros(data, pos)
    seconds, micros = divmod(micros, 1_000_000)
    return _EPOCH + timedelta(0, seconds, micros), end


def read_texts(data: bytes, pos: int, pairs: bool) -> tuple[list[str], int]:
    """The items of an array of strings (``pairs``: of a map of strings, key and value in turn)
    at ``pos``, in the blocks fastavro writes (no byte sizes)."""
    out: list[str] = []
    count, pos = read_long(data, pos)
    while count:
        if count < 0:
            raise NotPlain
        for _ in range(count * 2 if pairs else count):
            text, pos = read_text(data, pos)
            out.append(text)
        count, pos = read_long(data, pos)
    return out, pos


def text_bytes(text: str) -> bytes:
    raw = text.encode()
    return long_bytes(len(raw)) + raw


def long_bytes(n: int) -> bytes:
    """The zigzag varint of ``n``."""
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
    try:
        for text in (e.event_id, e.source, e.event_type, e.entity_type, e.entity_id):
            if type(text) is not str:
                return None
            parts.append(text_bytes(text))
        parts += (long_bytes(occurred), long_bytes(received))
        actor = e.actor_id
        if actor is None:
            parts.append(b"\x00")
        elif type(actor) is str:
            parts.append(b"\x02" + text_bytes(actor))
        else:
            return None
        attributes = e.attributes
        if attributes:
            parts.append(long_bytes(len(attributes)))
            for k, v in attributes.items():
                if type(k) is not str or type(v) is not str:
                    return None
                parts += (text_bytes(k), text_bytes(v))
        parts.append(_TAIL)
    except UnicodeEncodeError:  # a lone surrogate: fastavro decides what to say
        return None
    return b"".join(parts)


FulfillmentFields = tuple[
    str, str, str, str, datetime, str | None, dict[str, str], str, tuple[str, ...], int
]


def fulfillment_fields(data: bytes, pos: int) -> FulfillmentFields:
    """The fields of a fulfillment DE body at ``pos`` (schema de/fulfillment v1), as fastavro
    reads them: name, event id, fulfillment id, event type, event time, actor, attributes, and the
    lineage's root event id, stages and hops. Raises NotPlain (or IndexError, on a record cut
    short) for anything fastavro must judge."""
    name, pos = read_text(data, pos)
    event_id, pos = read_text(data, pos)
    fulfillment_id, pos = read_text(data, pos)
    event_type, pos = read_text(data, pos)
    occurred_at, pos = read_time(data, pos)
    branch, pos = read_long(data, pos)
    actor: str | None = None
    if branch == 1:
        actor, pos = read_text(data, pos)
    elif branch != 0:
        raise NotPlain
    pairs, pos = read_texts(data, pos, pairs=True)
    attributes = dict(zip(pairs[::2], pairs[1::2], strict=True))
    root, pos = read_text(data, pos)
    stages, pos = read_texts(data, pos, pairs=False)
    hops, pos = read_long(data, pos)
    if pos != len(data):
        raise NotPlain
    return (
        name,
        event_id,
        fulfillment_id,
        event_type,
        occurred_at,
        actor,
        attributes,
        root,
        tuple(stages),
        hops,
    )
