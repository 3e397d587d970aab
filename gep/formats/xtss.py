"""OUS workflow commands (``xtss``): a command to the OUS state service, keyed by OUS UID.

Two body shapes (docs/formats.md):

- JSON ``{"id", "operation", "ousUID", "value", "timestamp", "reply_to"?, "hops"?}``;
  ``timestamp`` is epoch milliseconds or ISO 8601; ``reply_to`` names the topic the answer goes
  to; ``hops`` is set by actors (commands caused by a broadcast), absent for external commands;
- plain text ``<operation> <ousUID> <value>``, the older shape: no id and no timestamp, so the
  command id is its place in the log (``<partition>-<offset>``) and its time the broker's.

Operations: ``set-state STATE``, ``set-substate RECIPE``, ``set-exec EXECUTIVE``, ``clear-exec``,
``set-flag NAME=VALUE``, ``clear-flag NAME``. Each command becomes one canonical event
``ous.<operation>`` of entity ``ous``; whether the move is legal is the life-cycle's business.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from common.checks import in_utc
from common.errors import InvalidEvent
from common.events import CanonicalEvent, Impact
from common.runloop import Message
from gep.formats import gooru_rules as r
from gep.formats.rejected import Rejected

NAME = "xtss"
OPERATIONS = ("set-state", "set-substate", "set-exec", "clear-exec", "set-flag", "clear-flag")
NO_VALUE = frozenset({"clear-exec"})
UID_RE = re.compile(r"^uid://[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_FLAG_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}=[^\x00]{0,200}$")


class Command(msgspec.Struct):
    operation: str | None = None
    ousUID: str | None = None
    value: str | None = None
    id: str | int | None = None
    timestamp: int | str | None = None
    reply_to: str | None = None
    hops: int = 0


_decoder = msgspec.json.Decoder(Command)


def looks_like(obj: object) -> bool:
    return isinstance(obj, dict) and "operation" in obj and "ousUID" in obj


def parse(value: bytes | None, received_at: datetime) -> Sequence[CanonicalEvent | Rejected]:
    """A JSON command (the plain-text shape needs the message: ``parse_message``)."""
    return [to_canonical(r.decode(_decoder, value), received_at, received_at, None)]


def parse_message(msg: Message, received_at: datetime) -> Sequence[CanonicalEvent | Rejected]:
    value = msg.value()
    if not value:
        raise InvalidEvent("empty", "the command has no body")
    place = f"{msg.partition()}-{msg.offset()}"
    broker = broker_time(msg, received_at)
    if value.lstrip()[:1] == b"{":
        return [to_canonical(r.decode(_decoder, value), received_at, broker, place)]
    return [to_canonical(parse_text(value), received_at, broker, place)]


def broker_time(msg: Message, default: datetime) -> datetime:
    """The time the broker logged the message; ``default`` when the message carries none (the
    run loop's ``Message`` protocol leaves it out, and unit-test fakes have none)."""
    stamp = getattr(msg, "timestamp", None)
    if not callable(stamp):
        return default
    kind, ms = stamp()
    try:
        return datetime.fromtimestamp(ms / 1000, UTC) if kind and ms > 0 else default
    except (OverflowError, ValueError, OSError):  # a producer may set any CreateTime
        return default


def parse_text(value: bytes) -> Command:
    try:
        text = value.decode()
    except UnicodeDecodeError:
        raise InvalidEvent("bad_text", "a plain-text command must be UTF-8") from None
    parts = text.strip().split(None, 2)
    if len(parts) < 2:
        raise InvalidEvent("bad_text", "expected '<operation> <ousUID> <value>'")
    return Command(parts[0], parts[1], parts[2] if len(parts) > 2 else None)


def to_canonical(
    c: Command, received_at: datetime, broker: datetime, place: str | None
) -> CanonicalEvent:
    op = c.operation
    if op not in OPERATIONS:
        raise InvalidEvent(
            "unknown_operation",
            f"operation={op!r} is not one of {', '.join(OPERATIONS)}",
            field="operation",
        )
    uid = (c.ousUID or "").strip()
    if not UID_RE.match(uid):
        raise InvalidEvent(
            "bad_ous_uid", f"ousUID={c.ousUID!r} is not uid://<a>/<b>/<c>", field="ousUID"
        )
    value = (c.value or "").strip()
    if op not in NO_VALUE:
        if not value:
            raise InvalidEvent("missing_value", f"{op} needs a value", field="value")
        pattern = _FLAG_RE if op == "set-flag" else _TOKEN_RE
        if not pattern.match(value):
            want = "NAME=VALUE" if op == "set-flag" else "a name of letters, digits, _ . : -"
            raise InvalidEvent("bad_value", f"value={value!r}: {op} needs {want}", field="value")
    if c.hops < 0:
        raise InvalidEvent("bad_value", "hops must not be negative", field="hops")
    command_id = r.optional_id(None if c.id is None else str(c.id), "id") or place
    if command_id is None:
        raise InvalidEvent("missing_field", "a JSON command needs an id", field="id")
    attributes = {"operation": op, "hops": str(c.hops)}
    if value and op not in NO_VALUE:
        attributes["value"] = value
    reply_to = r.optional_id(c.reply_to, "reply_to")
    if reply_to is not None:
        attributes["reply_to"] = reply_to
    return CanonicalEvent(
        event_id=command_id,
        source=NAME,
        event_type=f"ous.{op}",
        entity_type="ous",
        entity_id=uid,
        occurred_at=_time(c.timestamp, broker),
        received_at=received_at,
        attributes=attributes,
        impacts=(Impact("ous", op),),
    )


def _time(raw: int | str | None, default: datetime) -> datetime:
    if raw is None:
        return default
    if isinstance(raw, int):
        return r.epoch_ms(raw, "timestamp")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidEvent(
            "bad_timestamp", f"timestamp={raw!r} is not epoch ms or ISO 8601", field="timestamp"
        ) from None
    return in_utc(ts, "timestamp")
