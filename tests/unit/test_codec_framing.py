"""The codec's two framings: a registry codec writes ``00`` + id, reads both, asks the registry
once per schema (an in-memory registry stands behind the ``SchemaIds`` seam here; the real one is
in tests/integration/test_schema_registry.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from common.codec import SCHEMAS_DIR, Codec
from common.errors import InvalidEvent
from common.settings import Settings, SettingsError

FULFILLMENT = "de/fulfillment"


class MemoryRegistry:
    """Ids handed out in registration order, texts by id; counts the requests it serves."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}
        self.writer_calls = 0
        self.text_calls = 0

    def add(self, text: str) -> int:
        for schema_id, known in self.texts.items():
            if known == text:
                return schema_id
        self.texts[len(self.texts) + 1] = text
        return len(self.texts)

    def writer_id(self, name: str, versions: list[str]) -> int:
        self.writer_calls += 1
        return [self.add(text) for text in versions][-1]

    def schema_text(self, schema_id: int) -> str | None:
        self.text_calls += 1
        return self.texts.get(schema_id)

    def close(self) -> None:
        pass


def record(event_id: str = "1") -> dict[str, Any]:
    return {
        "name": "fulfillment.welcome",
        "event_id": event_id,
        "fulfillment_id": "f1",
        "event_type": "Event::Welcome",
        "occurred_at": datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
        "actor_id": None,
        "attributes": {"ip": "10.0.0.1"},
        "lineage": {"root_event_id": event_id, "stages": ["gep", "demux"], "hops": 1},
    }


def test_registry_codec_writes_magic_zero_and_the_id_and_asks_once() -> None:
    registry = MemoryRegistry()
    codec = Codec(registry=registry)
    encoded = [codec.encode(FULFILLMENT, record(str(i))) for i in range(50)]
    schema_id = int.from_bytes(encoded[0][1:5], "big")
    assert encoded[0][0] == 0 and registry.texts[schema_id] == codec.latest(FULFILLMENT).text
    assert {e[:5] for e in encoded} == {encoded[0][:5]}
    assert [codec.decode(FULFILLMENT, e)["event_id"] for e in encoded] == [
        str(i) for i in range(50)
    ]
    # One registration at the first record; the decoder knew the id from it.
    assert (registry.writer_calls, registry.text_calls) == (1, 0)


def test_registry_codec_reads_single_object_records_and_a_plain_codec_reads_its_own() -> None:
    plain = Codec().encode(FULFILLMENT, record("old"))
    assert plain[:2] == b"\xc3\x01"
    assert Codec(registry=MemoryRegistry()).decode(FULFILLMENT, plain)["event_id"] == "old"


def test_a_foreign_id_is_fetched_once_then_cached() -> None:
    registry = MemoryRegistry()
    framed = Codec(registry=registry).encode(FULFILLMENT, record("x"))
    reader = Codec(registry=registry)  # another process: knows no id yet
    for _ in range(5):
        assert reader.decode(FULFILLMENT, framed)["event_id"] == "x"
    assert registry.text_calls == 1


def test_a_newer_writer_version_resolves_to_the_local_one() -> None:
    # A producer already on a v2 this checkout lacks: a new field, with a default.
    newer = json.loads((SCHEMAS_DIR / FULFILLMENT / "v1.avsc").read_text())
    newer["fields"].append({"name": "tenant", "type": "string", "default": ""})
    registry = MemoryRegistry()
    schema_id = registry.add(json.dumps(newer))
    import io

    from fastavro import parse_schema, schemaless_writer

    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(newer), {**record("n"), "tenant": "t1"})
    data = b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue()
    back = Codec(registry=registry).decode(FULFILLMENT, data)
    assert back["event_id"] == "n" and "tenant" not in back


@pytest.mark.parametrize(
    "registry,data,reason",
    [
        (None, b"\x00\x00\x00\x00\x07" + b"\x02x", "unknown_schema"),
        (MemoryRegistry(), b"\x00\x00\x00\x00\x07" + b"\x02x", "unknown_schema"),
        (MemoryRegistry(), b"\x00\x00\x00", "not_avro"),
        (MemoryRegistry(), b'{"json": 1}', "not_avro"),
    ],
)
def test_bad_registry_frames_are_invalid(
    registry: MemoryRegistry | None, data: bytes, reason: str
) -> None:
    with pytest.raises(InvalidEvent) as info:
        Codec(registry=registry).decode(FULFILLMENT, data)
    assert info.value.reason == reason


def test_a_registry_record_of_another_schema_is_the_wrong_schema() -> None:
    registry = MemoryRegistry()
    codec = Codec(registry=registry)
    framed = codec.encode(FULFILLMENT, record())
    with pytest.raises(InvalidEvent) as info:
        Codec(registry=registry).decode("de/usage", framed)
    assert info.value.reason == "wrong_schema"


def test_registry_settings_are_validated() -> None:
    base = {"DA_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "DA_DATABASE_URL": "postgresql://x"}
    ok = Settings.load(
        {
            **base,
            "DA_SCHEMA_REGISTRY_URL": "https://sr.example:8081",
            "DA_SCHEMA_REGISTRY_BASIC_AUTH": "team:secret",
            "DA_STATE_DIR": "/nonexistent",
        }
    )
    assert ok.schema_registry_url == "https://sr.example:8081"
    for bad in (
        {"DA_SCHEMA_REGISTRY_URL": "sr.example:8081"},
        {"DA_SCHEMA_REGISTRY_URL": "http://sr", "DA_SCHEMA_REGISTRY_BASIC_AUTH": "nopassword"},
    ):
        with pytest.raises(SettingsError):
            Settings.load({**base, **bad, "DA_STATE_DIR": "/nonexistent"})
