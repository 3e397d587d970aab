"""The demux's proctoring fast path against the full way (decode, fan out, encode): on every
record it takes, the same DE byte for byte; on a damaged or unusual record it steps aside."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from cli.sample.fulfillments import COLUMNS, generate
from common.codec import Codec
from common.errors import InvalidEvent
from common.events import CanonicalEvent, Usage
from demux import fulfillment
from demux.reframe import Reframer
from gep.formats import proctoring

CODEC = Codec()
AT = datetime(2020, 1, 18, 13, 5, 54, tzinfo=UTC)


def full_way(data: bytes) -> tuple[str, str, bytes] | str:
    """What the demux writes for ``data`` the full way, or the reason it dead-letters it."""
    try:
        event = CanonicalEvent.decode(CODEC, data)
        if event.entity_type != fulfillment.ENTITY:
            return "not a fulfillment"
        (de,) = fulfillment.fan_out(event, CODEC, "demux")
    except InvalidEvent as exc:
        return exc.reason
    return de.name, de.key, de.value


def fast_way(reframe: Reframer, data: bytes) -> tuple[str, str, bytes] | str | None:
    try:
        de = reframe(data)
    except InvalidEvent as exc:
        return exc.reason
    return None if de is None else (de.name, de.key, de.value)


def sample_records() -> list[bytes]:
    rows = [
        dict(zip(COLUMNS, (getattr(r, c) for c in COLUMNS), strict=True)) for r in generate(7, 60)
    ]
    records = [proctoring.to_canonical(row, AT).encode(CODEC) for row in rows]
    odd = [
        CanonicalEvent(
            "é" * 70, "proctoring.csv", "Event::LaunchStart", "fulfillment", "f-ü", AT, AT, None, {}
        ),
        CanonicalEvent(
            "e",
            "proctoring.csv",
            "Event::Welcome",
            "fulfillment",
            "f",
            AT - timedelta(days=365 * 900),
            AT,
            "a" * 300,
            {f"k{i}": "v" * i * 9 for i in range(70)},
        ),
        CanonicalEvent("e", "proctoring.csv", "Event::bad type", "fulfillment", "f", AT, AT),
    ]
    return records + [e.encode(CODEC) for e in odd]


def test_plain_records_give_the_same_bytes_as_the_full_way() -> None:
    reframe = Reframer(CODEC, "demux")
    records = sample_records()
    taken = 0
    for data in records:
        fast = fast_way(reframe, data)
        if fast is not None:
            taken += 1
            assert fast == full_way(data)
    assert taken == len(records)  # every record GEP writes for proctoring takes the fast path


def test_damaged_records_give_the_same_result_or_step_aside() -> None:
    reframe = Reframer(CODEC, "demux")
    rng = random.Random(11)
    records = sample_records()
    stepped_aside = 0
    for _ in range(4000):
        data = bytearray(rng.choice(records))
        for _ in range(rng.randint(1, 3)):
            if len(data) < 12:
                break
            at = rng.randrange(2, len(data))
            op = rng.random()
            if op < 0.6:
                data[at] = rng.randrange(256)
            elif op < 0.8:
                del data[at:]
            else:
                data[at:at] = bytes([rng.randrange(256)])
        fast = fast_way(reframe, bytes(data))
        if fast is None:
            stepped_aside += 1
        else:
            assert fast == full_way(bytes(data)), bytes(data)
    assert stepped_aside > 100  # the damage did reach the checks


@pytest.mark.parametrize(
    "event",
    [
        CanonicalEvent(
            "e", "usage", "start", "usage", "u", AT, AT, usage=Usage("u", "c", "resource", "start")
        ),
        CanonicalEvent(
            "e",
            "proctoring.csv",
            "Event::Welcome",
            "fulfillment",
            "f",
            AT,
            AT,
            usage=Usage("u", "c", "resource", "start"),
        ),
    ],
)
def test_other_shapes_take_the_full_way(event: CanonicalEvent) -> None:
    assert Reframer(CODEC, "demux")(event.encode(CODEC)) is None


def test_a_record_of_the_older_schema_takes_the_full_way() -> None:
    v1 = CODEC.versions("canonical")[0]
    from io import BytesIO

    from fastavro import schemaless_writer

    buf = BytesIO()
    buf.write(v1.header)
    schemaless_writer(
        buf,
        v1.parsed,
        {
            "event_id": "e",
            "source": "s",
            "event_type": "Event::A",
            "entity_type": "fulfillment",
            "entity_id": "f",
            "occurred_at": AT,
            "received_at": AT,
            "actor_id": None,
            "attributes": {},
        },
    )
    assert Reframer(CODEC, "demux")(buf.getvalue()) is None
    assert full_way(buf.getvalue())[0] == "fulfillment.a"
