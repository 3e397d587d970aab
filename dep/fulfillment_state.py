"""DEP ``fulfillment-state``: where every proctoring fulfillment stands, and how long it spent in
each state (a visual tracker of the proctoring workplace).

Tables: ``events`` (every distinct raw event), ``current_fulfillments`` and
``fulfillments_history``. For each fulfillment that got a new trigger event, both state tables
are recomputed from its stored trigger events by the life-cycle engine (``dep.lifecycle``,
configured by ``fulfillment_states.toml``: forward only, event time), so the result is the same
whatever order, and however many times, the events arrive.

A wall-clock timer (``tick``, ``common.ticks``) emits ``fulfillment.wait_exceeded`` once per
fulfillment and state visit when a fulfillment has been WAITING longer than ``DA_WAIT_SLA_S``
with no event that ends the wait: the wait runs from the event time it entered WAITING to the
wall-clock time its input partition was last read to the end (``read_to``), so a backlog (an
initial load, a DEP catching up) alerts nothing until the events in it are applied. The alert
row (``fulfillment_wait_alerts``) and the DE in the outbox commit together, relayed exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from psycopg.types.json import Jsonb

from common.codec import Codec
from common.events import FulfillmentEvent, Lineage
from common.names import DEMUX, GEP, dep_stage
from common.outbox import Outbox, OutboxMessage
from common.runloop import Message
from common.settings import Settings
from common.store import Cursor
from common.ticks import Owned, ReadTo
from common.topics import Topics
from dep.lifecycle import Lifecycle
from dep.spec import DepSpec

NAME = "fulfillment-state"
STAGE = dep_stage(NAME)
DEFAULT_LIFECYCLE = Path(__file__).with_name("fulfillment_states.toml")
WAIT_EXCEEDED = "fulfillment.wait_exceeded"
WAITING = ("WAITING",)  # the states whose visits the timer watches

_DUE = """
INSERT INTO fulfillment_wait_alerts (fulfillment_id, state, entered_at, entered_event_id, sla_s)
SELECT c.fulfillment_id, c.state, c.state_start_time, c.state_event_id, %(sla)s
FROM current_fulfillments c
JOIN unnest(%(partitions)s::int[], %(read_to)s::timestamptz[]) AS r(p, read_to)
  ON c.input_partition = r.p
WHERE c.state = ANY(%(states)s)
  AND c.state_start_time < %(latest)s::timestamptz - make_interval(secs => %(sla)s)
  AND c.state_start_time + make_interval(secs => %(sla)s) < r.read_to
  AND NOT EXISTS (SELECT 1 FROM fulfillment_wait_alerts a
                  WHERE a.fulfillment_id = c.fulfillment_id AND a.state = c.state)
ON CONFLICT DO NOTHING
RETURNING fulfillment_id, state, entered_at, entered_event_id,
  (SELECT event_type FROM events WHERE event_id = entered_event_id)
"""


@dataclass(frozen=True, slots=True)
class Arrived:
    """A fulfillment DE and the input partition it came on (what the wait timer reads by)."""

    event: FulfillmentEvent
    partition: int


class FulfillmentState:
    def __init__(
        self,
        codec: Codec,
        lifecycle: Lifecycle,
        topics: Topics | None = None,
        wait_sla_s: float = 900.0,
        max_hops: int = 4,
    ) -> None:
        self.codec = codec
        self.lifecycle = lifecycle
        self.trigger_types = sorted(lifecycle.triggers)
        topics = topics or Topics()
        self.input_topic = topics.sink_bucket("demux", "fulfillment")
        self.alert_topic = topics.sink("dep", WAIT_EXCEEDED)
        self.wait_sla_s = wait_sla_s
        self.max_hops = max_hops
        self.outbox = Outbox(NAME)

    def decode(self, msg: Message) -> Arrived:
        return Arrived(FulfillmentEvent.decode(self.codec, msg.value()), msg.partition() or 0)

    def handle(self, events: Sequence[Arrived], cur: Cursor) -> None:
        distinct: dict[str, FulfillmentEvent] = {}
        partitions: dict[str, int] = {}
        for a in events:
            distinct.setdefault(a.event.event_id, a.event)
            partitions[a.event.fulfillment_id] = a.partition
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS incoming_events "
            "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute("TRUNCATE incoming_events")
        with cur.copy(
            "COPY incoming_events (event_id, fulfillment_id, event_type, created_at, "
            "created_by_id, payload) FROM STDIN"
        ) as copy:
            for e in distinct.values():
                copy.write_row(
                    (
                        e.event_id,
                        e.fulfillment_id,
                        e.event_type,
                        e.occurred_at,
                        e.actor_id,
                        Jsonb(dict(e.attributes)),
                    )
                )
        cur.execute(
            "INSERT INTO events (event_id, fulfillment_id, event_type, created_at, created_by_id,"
            " payload) SELECT event_id, fulfillment_id, event_type, created_at, created_by_id,"
            " payload FROM incoming_events ON CONFLICT (event_id) DO NOTHING"
            " RETURNING fulfillment_id, event_type"
        )
        affected = sorted(
            {str(fid) for fid, etype in cur.fetchall() if etype in self.lifecycle.triggers}
        )
        if affected:
            self._recompute(affected, partitions, cur)

    def tick(self, now: datetime, owned: Owned, read_to: ReadTo, cur: Cursor) -> None:
        """``fulfillment.wait_exceeded`` for each wait past the limit on a partition read to
        its end since the limit passed, once (the alert row's key), into the outbox."""
        mine = {p: at for (topic, p), at in read_to.items() if topic == self.input_topic}
        if not mine:
            return
        cur.execute(
            _DUE,
            {
                "sla": self.wait_sla_s,
                "partitions": list(mine),
                "read_to": list(mine.values()),
                "latest": max(mine.values()),
                "states": list(WAITING),
            },
        )
        out = []
        for fid, state, entered, entered_id, entered_type in cur.fetchall():
            entered_at = cast(datetime, entered)  # a timestamptz
            due = entered_at + timedelta(seconds=self.wait_sla_s)
            de = FulfillmentEvent(
                name=WAIT_EXCEEDED,
                event_id=str(entered_id),
                fulfillment_id=str(fid),
                event_type=str(entered_type or ""),
                occurred_at=due,
                lineage=Lineage(str(entered_id), (GEP, DEMUX), 1).next_hop(STAGE, self.max_hops),
                attributes={
                    "state": str(state),
                    "entered_at": entered_at.isoformat(),
                    "sla_s": f"{self.wait_sla_s:g}",
                    "detected_at": now.isoformat(),
                },
            )
            out.append(OutboxMessage(self.alert_topic, str(fid).encode(), de.encode(self.codec)))
        self.outbox.add(cur, out)

    def _recompute(
        self, fulfillment_ids: list[str], partitions: dict[str, int], cur: Cursor
    ) -> None:
        # One instance owns a fulfillment's partition, but while partitions are being added two
        # may briefly handle the same fulfillment: serialize them, so each reads the other's
        # committed events. Sorted, so two such transactions cannot deadlock.
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext(f)) FROM unnest(%s::text[]) AS f ORDER BY f",
            (fulfillment_ids,),
        )
        cur.execute(
            "SELECT fulfillment_id, event_id, event_type, created_at FROM events "
            "WHERE fulfillment_id = ANY(%s) AND event_type = ANY(%s)",
            (fulfillment_ids, self.trigger_types),
        )
        by_entity: dict[str, list[tuple[str, str, datetime]]] = {}
        for fid, event_id, event_type, created_at in cur.fetchall():
            by_entity.setdefault(str(fid), []).append((str(event_id), str(event_type), created_at))  # type: ignore[arg-type]
        current_rows: list[tuple[Any, ...]] = []
        history_rows: list[tuple[Any, ...]] = []
        for fid, evs in by_entity.items():
            now, left = self.lifecycle.replay(evs)
            if now is not None:
                current_rows.append((fid, now.state, now.at, now.event_id, partitions.get(fid)))
            history_rows += [
                (
                    fid,
                    h.state,
                    h.seconds,
                    h.entered_at,
                    h.left_at,
                    h.entered_event_id,
                    h.left_event_id,
                )
                for h in left
            ]
        cur.execute(
            "DELETE FROM fulfillments_history WHERE fulfillment_id = ANY(%s)", (fulfillment_ids,)
        )
        with cur.copy(
            "COPY fulfillments_history (fulfillment_id, state, time_in_state, "
            "entered_at, left_at, entered_event_id, left_event_id) FROM STDIN"
        ) as copy:
            for row in history_rows:
                copy.write_row(row)
        cur.executemany(
            "INSERT INTO current_fulfillments (fulfillment_id, state, state_start_time, "
            "state_event_id, input_partition) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (fulfillment_id) DO UPDATE SET "
            "state = EXCLUDED.state, state_start_time = EXCLUDED.state_start_time, "
            "state_event_id = EXCLUDED.state_event_id, updated_at = now(), "
            "input_partition = coalesce(EXCLUDED.input_partition, "
            "current_fulfillments.input_partition) "
            "WHERE (current_fulfillments.state, current_fulfillments.state_start_time, "
            "current_fulfillments.state_event_id, current_fulfillments.input_partition) "
            "IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.state_start_time, "
            "EXCLUDED.state_event_id, EXCLUDED.input_partition)",
            current_rows,
        )


def build(settings: Settings, codec: Codec) -> FulfillmentState:
    path = (
        Path(settings.fulfillment_lifecycle)
        if settings.fulfillment_lifecycle
        else (DEFAULT_LIFECYCLE)
    )
    lifecycle = Lifecycle.load(path)
    if lifecycle.order != "event_time":
        # The states are recomputed from the stored events, which keep event time, not log order.
        raise ValueError(f"{path}: fulfillment-state computes in event time; order must say so")
    return FulfillmentState(
        codec, lifecycle, Topics(settings.namespace), settings.wait_sla_s, settings.max_hops
    )


SPEC = DepSpec(
    name=NAME,
    description="Proctoring fulfillments: current state and time spent in each state",
    inputs=(("demux", "fulfillment"),),
    # Not fulfillment_wait_alerts: what was alerted stays alerted across `da replay --rebuild`,
    # so a rebuild does not alert a visit twice.
    tables=("events", "current_fulfillments", "fulfillments_history"),
    migrations=Path(__file__).parent / "migrations" / "fulfillment_state",
    input_schemas=("de/fulfillment",),
    build=build,
    emits=(("dep", "fulfillment"),),
    emits_schema="de/fulfillment",
    outbox=True,
    # Alerts are counted by whoever subscribes (a pager): relayed exactly once.
    outbox_exactly_once=True,
    outbox_from_batches=False,  # only its timer emits
)
