"""Every schema version has examples, and every example round-trips through the codec."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from common.codec import SCHEMAS_DIR, Codec
from common.errors import InvalidEvent

CODEC = Codec()
SCHEMA_FILES = sorted(SCHEMAS_DIR.rglob("v*.avsc"))


def _timestamps(record: Any) -> Any:
    if isinstance(record, dict):
        return {k: _timestamps(v) for k, v in record.items()}
    if isinstance(record, list):
        return [_timestamps(v) for v in record]
    if isinstance(record, str) and len(record) > 18 and record[4] == "-" and record[10] == "T":
        return datetime.fromisoformat(record)
    return record


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: str(p.relative_to(SCHEMAS_DIR)))
def test_examples_round_trip(path: Path) -> None:
    examples = path.with_name(f"{path.stem}.example.json")
    assert examples.is_file(), f"{examples} is missing"
    name = path.parent.relative_to(SCHEMAS_DIR).as_posix()
    records = [_timestamps(r) for r in json.loads(examples.read_text())]
    assert records
    latest = CODEC.latest(name).version == int(path.stem[1:])
    for record in records:
        back = CODEC.decode(name, CODEC.encode(name, record))
        # An older version's example still reads back unchanged; newer fields take defaults.
        assert (back if latest else {k: back[k] for k in record}) == record


def test_a_record_of_another_schema_is_rejected() -> None:
    data = CODEC.encode(
        "canonical",
        _timestamps(json.loads((SCHEMAS_DIR / "canonical" / "v1.example.json").read_text())[0]),
    )
    with pytest.raises(InvalidEvent) as info:
        CODEC.decode("de/fulfillment", data)
    assert info.value.reason == "wrong_schema"


@pytest.mark.parametrize(
    "data,reason",
    [
        (None, "not_avro"),
        (b"\xc3\x01" + b"\x00" * 8 + b"xx", "unknown_schema"),
    ],
)
def test_garbage_is_rejected(data: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        CODEC.decode("canonical", data)
    assert info.value.reason == reason


def test_truncated_record_is_rejected() -> None:
    data = CODEC.encode(
        "canonical",
        _timestamps(json.loads((SCHEMAS_DIR / "canonical" / "v1.example.json").read_text())[0]),
    )
    with pytest.raises(InvalidEvent) as info:
        CODEC.decode("canonical", data[:20])
    assert info.value.reason == "corrupt_avro"
