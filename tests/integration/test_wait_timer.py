"""``fulfillment-state``'s wait timer on a real PostgreSQL: a wait past ``DA_WAIT_SLA_S`` is
alerted once, into the outbox, only when its partition was read to the end after the limit
passed; a wait that ended in time, and one whose partition has a backlog, are not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from common import db
from common.codec import Codec
from common.events import FulfillmentEvent, Lineage
from common.settings import Settings
from common.topics import Topics
from dep import registry
from dep.fulfillment_state import Arrived, FulfillmentState
from dep.wait_timer import WAIT_EXCEEDED

CODEC = Codec()
SLA_S = 60.0
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def de(fid: str, eid: str, etype: str, at: datetime) -> FulfillmentEvent:
    return FulfillmentEvent(
        name="fulfillment.x",
        event_id=eid,
        fulfillment_id=fid,
        event_type=etype,
        occurred_at=at,
        lineage=Lineage(eid, ("gep", "demux"), 1),
    )


@pytest.fixture
def handler(settings: Settings) -> FulfillmentState:
    db.migrate(settings, registry.all_migrations())
    built = registry.get("fulfillment-state").build(replace(settings, wait_sla_s=SLA_S), CODEC)
    assert isinstance(built, FulfillmentState)
    return built


def handle(settings: Settings, h: FulfillmentState, events: list[Arrived]) -> None:
    with db.connect(settings) as conn, conn.transaction():
        h.handle(events, conn.cursor())


def tick(settings: Settings, h: FulfillmentState, read_to: dict[int, datetime]) -> None:
    topic = Topics(settings.namespace).sink_bucket("demux", "fulfillment")
    owned = frozenset((topic, p) for p in read_to)
    with db.connect(settings) as conn, conn.transaction():
        h.tick(NOW, owned, {(topic, p): at for p, at in read_to.items()}, conn.cursor())


def alerts(settings: Settings) -> list[Any]:
    with db.connect(settings) as conn:
        values = conn.execute(
            "SELECT topic, key, value FROM da_outbox WHERE owner = 'fulfillment-state' ORDER BY id"
        ).fetchall()
    return [
        (t, bytes(cast(bytes, k)), FulfillmentEvent.decode(CODEC, bytes(cast(bytes, v))))
        for t, k, v in values
    ]


def test_a_wait_past_the_limit_is_alerted_once_when_its_partition_is_read(
    settings: Settings, handler: FulfillmentState
) -> None:
    start = NOW - timedelta(seconds=SLA_S + 30)
    handle(
        settings,
        handler,
        [
            Arrived(de("late", "1", "Event::LmiConnected", start), 0),
            Arrived(de("in-time", "2", "Event::LmiConnected", start), 1),
            Arrived(de("in-time", "3", "Event::LaunchStart", start + timedelta(seconds=5)), 1),
            Arrived(de("behind", "4", "Event::LmiConnected", start), 2),
        ],
    )
    # Partition 2 was last read to its end before the limit passed: its backlog may hold what
    # ends the wait. Partition 0 was read to its end only before the limit: nothing either.
    tick(settings, handler, {0: start + timedelta(seconds=SLA_S - 1), 2: start})
    assert alerts(settings) == []
    for _ in range(3):  # read past the limit, ticked again and again: one alert
        tick(settings, handler, {0: NOW, 1: NOW, 2: start})
    [(topic, key, alert)] = alerts(settings)
    assert topic == Topics(settings.namespace).sink("dep", WAIT_EXCEEDED)
    assert key == b"late"
    assert (alert.name, alert.fulfillment_id, alert.event_id) == (WAIT_EXCEEDED, "late", "1")
    assert alert.event_type == "Event::LmiConnected"
    assert alert.occurred_at == start + timedelta(seconds=SLA_S)
    assert alert.attributes["state"] == "WAITING"
    assert alert.lineage == Lineage("1", ("gep", "demux", "dep.fulfillment-state"), 2)
    # The wait ends after the alert: nothing more, and the alert is kept once.
    handle(settings, handler, [Arrived(de("late", "5", "Event::LaunchStart", NOW), 0)])
    tick(settings, handler, {0: NOW + timedelta(hours=1), 1: NOW, 2: NOW})
    assert [a[2].fulfillment_id for a in alerts(settings)] == ["late", "behind"]
    with db.connect(settings) as conn:
        kept = conn.execute(
            "SELECT fulfillment_id, state FROM fulfillment_wait_alerts ORDER BY 1"
        ).fetchall()
    assert kept == [("behind", "WAITING"), ("late", "WAITING")]
