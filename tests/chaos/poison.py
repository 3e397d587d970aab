"""The chaos run's poison: a message of every class that can never succeed, at every stage, each
with the dead letters it is due: (stage, reason) for every running stage that consumes its topic.

- GEP (the ingest topic): the poison corpus of the dead-letter work (``tests.e2e.nasty``): nesting
  past any parser, timestamps whose UTC conversion overflows, an output past the record limit,
  ~1 MB that is not JSON, numbers no type holds, a lone surrogate and a NUL in the payload, an
  app longer than any index; and bytes with no format at all.
- demux (canonical) and the DEPs (DE topics, straight from the producer): bytes that are not
  Avro, an unknown writer schema, a valid header over garbage, a timestamp past year 9999, a lone
  surrogate inside an Avro string, a record of another schema; for the DEPs also a DE whose
  identity holds a NUL or is longer than an index row (PostgreSQL refuses it), and a DE name no
  DEP can read. Avro records have no nesting to go deep in: that class stops at GEP. The OUS
  state service answers a command it cannot apply (404, 409, 422) instead of dead-lettering it,
  so its topic gets only what no stage can decode.

Every poison body is distinct (its sequence number is in it), so no stage can mistake one for a
repeat of another.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from common.codec import Codec
from common.names import dep_stage
from common.topics import Topics
from dep import registry
from tests.adversarial import examples
from tests.e2e.nasty import HEADERS, corpus

Headers = list[tuple[str, str | bytes | None]]

# The reason GEP gives each class of the corpus (its dead-letter reason, exactly).
GEP_REASONS = {
    "deep_nesting": "too_deep",
    "utc_underflow": "bad_timestamp",
    "utc_overflow": "bad_timestamp",
    "output_too_large": "too_large",
    "non_json_1mb": "bad_json",
    "huge_number": "bad_type",
    "huge_integer": "bad_type",
    "lone_surrogate": "unstorable_text",
    "nul_in_payload": "unstorable_text",
    "huge_index_key": "missing_field",
}
# What every decoder says of these, whatever the stage.
UNDECODABLE = {
    "not_avro": "not_avro",
    "unknown_schema": "unknown_schema",
    "corrupt_avro": "corrupt_avro",
    "timestamp_past_9999": "corrupt_avro",
    "lone_surrogate_in_avro": "corrupt_avro",
    "other_schema": "wrong_schema",
}
# Decoded fine, refused by the DEP: by PostgreSQL (a NUL in text, an index row too large) or by
# the DE's own check (a name without object and metric).
REFUSED = {
    "nul_in_identity": "rejected_by_database",
    "identity_past_index_row": "rejected_by_database",
    "bad_de_name": "bad_value",
}
CODEC = Codec()  # single-object framing: every stage reads it, with a registry or without
SCHEMA_OF_BUCKET = {
    "fulfillment": "de/fulfillment",
    "content": "de/system",
    "resource.timespent": "de/usage",
    "assessment.view": "de/usage",
    "ous": "de/system",
}


@dataclass(frozen=True)
class Poison:
    kind: str  # the class, e.g. ``deep_nesting``
    topic: str
    letters: tuple[tuple[str, str], ...]  # (stage, reason): the dead letters it is due
    body: Callable[[int], bytes] = field(compare=False)
    headers: Headers = field(default_factory=list, compare=False)


def targets(topics: Topics, running: list[str], max_message_bytes: int) -> list[Poison]:
    """Every class at every stage of ``running`` (the DEP names the run keeps going)."""
    out = [_gep(topics, kind, reason, max_message_bytes) for kind, reason in GEP_REASONS.items()]
    out.append(
        Poison(
            "no_format",
            topics.ingest,
            (("gep", "bad_json"),),
            lambda i: b"\x00not json at all " + str(i).encode(),
        )
    )
    out += [
        Poison(kind, topics.canonical, (("demux", reason),), _avro(kind, "canonical", ""))
        for kind, reason in UNDECODABLE.items()
    ]
    for bucket, schema in SCHEMA_OF_BUCKET.items():
        topic = topics.sink_bucket("demux", bucket)
        consumers = [dep_stage(d) for d in running if topic in registry.get(d).topics(topics)]
        kinds = {**UNDECODABLE, **REFUSED}
        if schema == "de/fulfillment":  # its name is its event type's, checked by nobody
            del kinds["bad_de_name"]
        if bucket == "ous":
            kinds = dict(UNDECODABLE)
        out += [
            Poison(kind, topic, tuple((s, reason) for s in consumers), _avro(kind, schema, bucket))
            for kind, reason in kinds.items()
        ]
    return _by_turns(out)


def _by_turns(poison: list[Poison]) -> list[Poison]:
    """Each topic's poison in turn, so that a short run still reaches every stage early."""
    by_topic: dict[str, list[Poison]] = {}
    for p in poison:
        by_topic.setdefault(p.topic, []).append(p)
    rows = zip_longest(*by_topic.values())
    return [p for row in rows for p in row if p is not None]


def _gep(topics: Topics, kind: str, reason: str, max_message_bytes: int) -> Poison:
    named = next(n.named for n in corpus(max_message_bytes) if n.name == kind)

    def body(i: int) -> bytes:
        return next(n.value for n in corpus(max_message_bytes, salt=i) if n.name == kind)

    return Poison(kind, topics.ingest, (("gep", reason),), body, HEADERS if named else [])


def _avro(kind: str, schema: str, bucket: str) -> Callable[[int], bytes]:
    example: dict[str, Any] = examples(schema)[0]
    if schema == "de/usage":  # a DE of its topic's name, inside a collection: every DEP takes it
        example = {**example, "name": f"usage.{bucket}", "collection_type": "collection"}

    def body(i: int) -> bytes:
        return _avro_body(kind, schema, example, str(i))

    return body


def _avro_body(kind: str, schema: str, example: dict[str, Any], salt: str) -> bytes:
    if kind == "not_avro":
        return b"not avro " + salt.encode()
    if kind == "unknown_schema":  # the single-object marker and a fingerprint no schema has
        return b"\xc3\x01" + b"\x00" * 8 + salt.encode()
    if kind == "corrupt_avro":  # the schema's own header over bytes no record starts with
        return CODEC.encode(schema, example)[:10] + b"\xff" * 16 + salt.encode()
    if kind == "other_schema":
        other = "de/web" if schema == "canonical" else "canonical"
        return CODEC.encode(other, {**examples(other)[0], "event_id": f"poison-{salt}"})
    record = _lineage({**example, "event_id": f"poison-{salt}"}, f"poison-{salt}")
    if kind == "timestamp_past_9999":  # a long no datetime holds, as a foreign producer may write
        return CODEC.encode(schema, {**record, "occurred_at": 2**62})
    if kind == "lone_surrogate_in_avro":  # Python cannot write one: its UTF-8 bytes are put in
        where = next(k for k in ("entity_id", "fulfillment_id", "user_id") if k in record)
        placed = CODEC.encode(schema, {**record, where: "~~~"})
        return placed.replace(b"\x06~~~", b"\x06\xed\xa0\x80", 1)
    if kind == "nul_in_identity":
        return CODEC.encode(schema, _identity(record, f"poison-{salt}\x00"))
    if kind == "identity_past_index_row":
        # Random hex: PostgreSQL compresses an index entry, and hex halves at best.
        past = random.Random(salt).randbytes(10_000).hex()
        return CODEC.encode(schema, _identity(record, f"poison-{salt}-{past}"))
    if kind == "bad_de_name":
        return CODEC.encode(schema, {**record, "name": "usage" if "usage" in schema else "content"})
    raise ValueError(f"no poison of kind {kind!r}")


def _identity(record: dict[str, Any], value: str) -> dict[str, Any]:
    """``value`` in every field a DEP keys its rows by (whichever the schema has)."""
    keys = [k for k in ("event_id", "entity_id", "fulfillment_id", "user_id") if k in record]
    return _lineage({**record, **dict.fromkeys(keys, value)}, value)


def _lineage(record: dict[str, Any], root: str) -> dict[str, Any]:
    """The record with ``root`` as the raw event it came from (a DE's identity), if it has one."""
    if "lineage" not in record:
        return record
    return {**record, "lineage": {**record["lineage"], "root_event_id": root}}
