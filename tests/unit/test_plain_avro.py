"""The canonical record written directly (``common.events.plain``) is byte for byte what fastavro
writes, on the plain shape and on everything else (which goes to fastavro); a fulfillment DE read
directly is what fastavro reads, and a damaged one is refused as fastavro refuses it."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from unittest.mock import patch

import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from common.codec import SCHEMAS_DIR, Codec
from common.errors import InvalidEvent
from common.events import (
    FULFILLMENT_DE,
    CanonicalEvent,
    FulfillmentEvent,
    Impact,
    Lineage,
    SystemChange,
    Usage,
)
from common.events.plain import canonical_body, long_bytes, writes_plain

CODEC = Codec()
text = st.text(max_size=80)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=23, minutes=59))]
)
moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones
)


def _fastavro(e: CanonicalEvent) -> bytes:
    with patch("common.events.canonical.writes_plain", return_value=False):
        return e.encode(CODEC)


@st.composite
def events(draw: st.DrawFn, plain: bool) -> CanonicalEvent:
    usage = None if plain else draw(st.none() | st.just(Usage("u", "c", "resource", "start")))
    system = None if plain else draw(st.none() | st.just(SystemChange("created", "course")))
    impacts = () if plain else draw(st.sampled_from([(), (Impact("class", "usage"),)]))
    return CanonicalEvent(
        draw(text),
        draw(text),
        draw(text),
        draw(text),
        draw(text),
        draw(moments),
        draw(moments),
        draw(st.none() | text),
        draw(st.dictionaries(text, text, max_size=6)),
        usage,
        system,
        impacts,
    )


@settings(max_examples=400, deadline=None)
@given(events(plain=True))
def test_a_plain_event_is_written_as_fastavro_writes_it(e: CanonicalEvent) -> None:
    assert canonical_body(e) is not None
    written = e.encode(CODEC)
    assert written == _fastavro(e)
    assert CanonicalEvent.decode(CODEC, written) == e


@settings(max_examples=100, deadline=None)
@given(events(plain=False))
def test_any_event_is_written_as_fastavro_writes_it(e: CanonicalEvent) -> None:
    assert e.encode(CODEC) == _fastavro(e)


@given(st.integers(min_value=-(1 << 62) + 1, max_value=(1 << 62) - 1))
def test_a_long_is_the_zigzag_varint_avro_writes(n: int) -> None:
    buf = io.BytesIO()
    schemaless_writer(buf, {"type": "long"}, n)
    assert long_bytes(n) == buf.getvalue()


def test_what_the_plain_writer_does_not_take_goes_to_fastavro() -> None:
    at = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    plain = CanonicalEvent("e", "proctoring", "t", "fulfillment", "f", at, at, "a", {"k": "v"})
    assert canonical_body(plain) is not None
    naive = CanonicalEvent("e", "s", "t", "x", "f", at.replace(tzinfo=None), at)
    surrogate = CanonicalEvent("e\ud800", "s", "t", "x", "f", at, at)
    not_text = CanonicalEvent("e", "s", "t", "x", "f", at, at, attributes={"k": 1})  # type: ignore[dict-item]
    for e in (naive, surrogate, not_text):
        assert canonical_body(e) is None
    assert naive.encode(CODEC) == _fastavro(naive)  # fastavro's reading of a naive time
    for e in (surrogate, not_text):  # and what fastavro says of these
        with pytest.raises(Exception) as plain_way:
            e.encode(CODEC)
        with pytest.raises(Exception) as fastavro_way:
            _fastavro(e)
        assert type(plain_way.value) is type(fastavro_way.value)


def test_a_new_canonical_layout_turns_the_plain_writer_off(tmp_path: Path) -> None:
    assert writes_plain(CODEC)
    shutil.copytree(SCHEMAS_DIR, tmp_path / "schemas")
    v2 = json.loads((tmp_path / "schemas" / "canonical" / "v2.avsc").read_text())
    v2["fields"].insert(5, {"name": "tenant", "type": "string", "default": ""})
    (tmp_path / "schemas" / "canonical" / "v3.avsc").write_text(json.dumps(v2))
    newer = Codec(tmp_path / "schemas")
    assert not writes_plain(newer)
    at = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    e = CanonicalEvent("e", "proctoring", "t", "fulfillment", "f", at, at)
    assert CanonicalEvent.decode(newer, e.encode(newer)) == e


def _fastavro_read(data: bytes) -> FulfillmentEvent | str:
    try:
        with patch.object(Codec, "newest_body", return_value=None):
            return FulfillmentEvent.decode(CODEC, data)
    except InvalidEvent as exc:
        return exc.reason


def _direct_read(data: bytes) -> FulfillmentEvent | str:
    try:
        return FulfillmentEvent.decode(CODEC, data)
    except InvalidEvent as exc:
        return exc.reason


@st.composite
def fulfillment_events(draw: st.DrawFn) -> FulfillmentEvent:
    return FulfillmentEvent(
        draw(text),
        draw(text),
        draw(text),
        draw(text),
        draw(moments),
        Lineage(
            draw(text), tuple(draw(st.lists(text, max_size=4))), draw(st.integers(0, 2**31 - 1))
        ),
        draw(st.none() | text),
        draw(st.dictionaries(text, text, max_size=6)),
    )


@settings(max_examples=300, deadline=None)
@given(fulfillment_events())
def test_a_de_is_read_as_fastavro_reads_it(e: FulfillmentEvent) -> None:
    data = e.encode(CODEC)
    assert CODEC.newest_body(FULFILLMENT_DE, data) is not None  # the direct way is taken
    read = _direct_read(data)
    assert read == _fastavro_read(data)
    assert isinstance(read, FulfillmentEvent) and read.occurred_at == e.occurred_at


@settings(max_examples=300, deadline=None)
@given(fulfillment_events(), st.data())
def test_a_damaged_de_is_read_or_refused_as_fastavro_does(
    e: FulfillmentEvent, data: st.DataObject
) -> None:
    raw = bytearray(e.encode(CODEC))
    body = CODEC.newest_body(FULFILLMENT_DE, bytes(raw)) or 0
    kind = data.draw(st.sampled_from(["cut", "flip", "append"]))
    at = data.draw(st.integers(body, len(raw) - 1))
    if kind == "cut":
        damaged = bytes(raw[:at])
    elif kind == "flip":
        raw[at] ^= data.draw(st.integers(1, 255))
        damaged = bytes(raw)
    else:
        damaged = bytes(raw) + data.draw(st.binary(min_size=1, max_size=4))
    assert _direct_read(damaged) == _fastavro_read(damaged)
