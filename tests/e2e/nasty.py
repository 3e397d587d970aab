"""Raw messages for the poison tests: good web events, and bad ones of every class that can stop
a stage, each with the dead-letter reason (and stage) it must end with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from gep.formats import web
from gep.stage import FORMAT_HEADER

HEADERS: list[tuple[str, str | bytes | None]] = [(FORMAT_HEADER, web.NAME.encode())]
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def event(session: str, data: object, timestamp: str = "2026-11-29T11:00:00Z") -> bytes:
    body = {"session_id": session, "category": "page", "name": "view", "data": data}
    return json.dumps({**body, "timestamp": timestamp}, separators=(",", ":")).encode()


def raw(session: str, data: object, timestamp: str = "2026-11-29T11:00:00Z") -> bytes:
    """A collector record (the ingest topic's web format) around one event."""
    return web.envelope("fuzz-app", NOW, event(session, data, timestamp))


def good(i: int) -> bytes:
    return raw(f"good-{i}", {"i": i})


@dataclass(frozen=True)
class Nasty:
    name: str
    value: bytes
    stage: str  # whose dead-letter topic it must reach
    reason: str


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def corpus(max_message_bytes: int) -> list[Nasty]:
    """One of every class (see docs/reliability.md, "Error taxonomy"); sizes follow the limit."""
    nested = web.envelope("fuzz-app", NOW, event("deep", {"x": 1})).replace(
        b'{"x":1}', ('{"x":' + deep(10_000) + "}").encode()
    )
    # Numbers that grow when re-encoded (9e15 -> 9000000000000000.0): fits the limit as
    # received, not once GEP has turned it into a canonical record.
    numbers = ",".join(["9e15"] * (max_message_bytes // 6))
    swelling = web.envelope("fuzz-app", NOW, event("swell", {"n": 0})).replace(
        b'{"n":0}', b'{"n":[' + numbers.encode() + b"]}"
    )
    return [
        Nasty("deep_nesting", nested, "gep", "unprocessable"),
        Nasty(
            "utc_overflow", raw("tz", {"a": 1}, "0001-01-01T00:30:00+01:00"), "gep", "unprocessable"
        ),
        Nasty("output_too_large", swelling, "gep", "too_large"),
        Nasty("non_json_1mb", b"\xfe" * (max_message_bytes - 2048), "gep", "bad_envelope"),
        Nasty(
            "nul_in_payload",
            raw("nul", {"text": "a\x00b"}),
            "dep.web-events",
            "rejected_by_database",
        ),
        Nasty(
            "huge_index_key",
            raw("k" * 10_000, {"a": 1}),
            "gep",
            "bad_value",
        ),
    ]
