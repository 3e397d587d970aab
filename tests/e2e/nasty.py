"""Raw messages for the poison tests: good web events, and bad ones of every class that can stop
a stage, each with the dead-letter reason (and stage) it must end with."""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from common import web_post as web
from common.names import FORMAT_HEADER
from tests.adversarial import NASTY_TEXT

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
    # Where it may end: (stage whose dead-letter topic has it, reason), any one of them, once;
    # empty: stored or dead-lettered for any reason, once.
    outcomes: tuple[tuple[str, str], ...]
    named: bool = True  # sent with the da-format header (a raw message may lack it)


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def with_data(session: str, data_json: bytes, timestamp: str = "2026-11-29T11:00:00Z") -> bytes:
    """A collector record whose event's ``data`` is the given JSON text, verbatim."""
    return raw(session, {"p": 0}, timestamp).replace(b'{"p":0}', data_json)


def corpus(max_message_bytes: int, salt: int = 0) -> list[Nasty]:
    """One message of each class that used to stop or crash a stage (docs/reliability.md,
    "Error taxonomy"); sizes follow the stages' record limit; ``salt`` makes each round's
    messages distinct."""
    # 9e15 becomes 9000000000000000.0 when GEP re-encodes it: about 3.5 times the size.
    swelling = b'{"n":[' + b",".join([b"9e15"] * (max_message_bytes // 6)) + b"]}"
    app = f"fuzz-{salt:05d}".encode()
    return [
        Nasty(n.name, n.value.replace(b"fuzz-app", app), n.outcomes, n.named)
        for n in _classes(swelling, salt)
    ]


def _classes(swelling: bytes, salt: int) -> list[Nasty]:
    return [
        Nasty(
            "deep_nesting",
            with_data("deep", b'{"x":' + deep(10_000).encode() + b"}"),
            (("gep", "too_deep"), ("gep", "unprocessable")),
        ),
        Nasty(
            "utc_underflow",
            raw("tz1", {"a": 1}, "0001-01-01T00:30:00+01:00"),
            (("gep", "bad_timestamp"), ("gep", "unprocessable")),
        ),
        Nasty(
            "utc_overflow",
            raw("tz2", {"a": 1}, "9999-12-31T23:59:59-01:00"),
            (("gep", "bad_timestamp"), ("gep", "unprocessable")),
        ),
        Nasty("output_too_large", with_data("swell", swelling), (("gep", "too_large"),)),
        # Larger than a dead letter may be: it is kept truncated.
        Nasty(
            "non_json_1mb", b"\xfe" * 989_992 + b"%08d" % salt, (("gep", "bad_json"),), named=False
        ),
        Nasty("huge_number", with_data("num", b'{"n":1e400}'), (("gep", "bad_type"),)),
        Nasty(
            "huge_integer", with_data("int", b'{"n":' + b"9" * 5000 + b"}"), (("gep", "bad_type"),)
        ),
        Nasty(
            "lone_surrogate",
            with_data("sur", b'{"t":"a\\ud800b"}'),
            (("gep", "unstorable_text"), ("gep", "bad_envelope"), ("gep", "bad_json")),
        ),
        # PostgreSQL's jsonb cannot hold \u0000: GEP refuses it (else the DEP's database would).
        Nasty(
            "nul_in_payload",
            with_data("nul", b'{"t":"a\\u0000b"}'),
            (("gep", "unstorable_text"), ("dep.web-events", "rejected_by_database")),
        ),
        # Rejected by GEP; its app (10,000 random characters) is more than the errors table's
        # index takes: the collector-errors DEP must not retry it forever (checked apart).
        Nasty(
            "huge_index_key",
            web.envelope(secrets.token_hex(5000), NOW, b'{"session_id":"s"}'),
            (("gep", "missing_field"),),
        ),
    ]


def generated(rng: random.Random, salt: int, i: int) -> Nasty:
    """A web event of random adversarial content (the value pools of ``tests.adversarial``),
    whose fate is not known in advance: it must be stored or dead-lettered, once."""

    def value(depth: int = 0) -> object:
        kind = rng.randrange(6 if depth < 3 else 4)
        if kind == 0:
            return rng.choice(NASTY_TEXT)[: rng.choice([10, 1000, 200_000])]
        if kind == 1:
            return rng.choice([0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 10**30, 1e308, -0.0])
        if kind == 2:  # written in after json.dumps, which could not go this deep itself
            return f"<<deep:{rng.choice([1, 10, 900, 2000, 20_000])}>>"
        if kind == 3:
            return rng.choice(EDGE_TIMES)
        if kind == 4:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(NASTY_TEXT)[:20]: value(depth + 1) for _ in range(rng.randrange(4))}

    data = {f"k{j}": value() for j in range(rng.randrange(1, 4))}
    try:
        body = json.dumps(
            {
                "session_id": f"gen-{salt}-{i}",
                "category": "page",
                "name": "view",
                "data": data,
                "timestamp": rng.choice(EDGE_TIMES),
            },
            separators=(",", ":"),
        ).encode()
    except (RecursionError, ValueError):  # Python's own json could not write it: try again
        return generated(rng, salt, i)
    for levels in (1, 10, 900, 2000, 20_000):
        body = body.replace(f'"<<deep:{levels}>>"'.encode(), deep(levels).encode())
    return Nasty("generated", web.envelope(f"fuzz-{salt:05d}", NOW, body), (), True)


EDGE_TIMES = [
    "2026-11-29T11:00:00Z",
    "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-02-29T00:00:00Z",
    "2026-11-29T11:00:00+14:00",
    "2026-11-29T11:00:00",
    "1970-01-01T00:00:00-12:00",
]
