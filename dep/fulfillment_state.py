"""DEP ``fulfillment-state``: where every proctoring fulfillment stands, and how long it spent in
each state (a visual tracker of the proctoring workplace).

Tables: ``events`` (every distinct raw event), ``current_fulfillments`` and
``fulfillments_history``. For each fulfillment that got a new trigger event, both state tables
are recomputed from its stored trigger events by the life-cycle engine (``dep.lifecycle``,
configured by ``fulfillment_states.toml``: forward only, event time), so the result is the same
whatever order, and however many times, the events arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from common.codec import Codec
from common.events import FulfillmentEvent
from common.runloop import Message
from common.settings import Settings, SettingsError
from common.store import Cursor
from dep.lifecycle import Lifecycle
from dep.spec import DepSpec

DEFAULT_LIFECYCLE = Path(__file__).with_name("fulfillment_states.toml")


class FulfillmentState:
    def __init__(self, codec: Codec, lifecycle: Lifecycle) -> None:
        self.codec = codec
        self.lifecycle = lifecycle
        self.trigger_types = sorted(lifecycle.triggers)

    def decode(self, msg: Message) -> FulfillmentEvent:
        return FulfillmentEvent.decode(self.codec, msg.value())

    def handle(self, events: Sequence[FulfillmentEvent], cur: Cursor) -> None:
        distinct: dict[str, FulfillmentEvent] = {}
        for e in events:
            distinct.setdefault(e.event_id, e)
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
            self._recompute(affected, cur)

    def _recompute(self, fulfillment_ids: list[str], cur: Cursor) -> None:
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
                current_rows.append((fid, now.state, now.at, now.event_id))
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
            "state_event_id) VALUES (%s, %s, %s, %s) ON CONFLICT (fulfillment_id) DO UPDATE SET "
            "state = EXCLUDED.state, state_start_time = EXCLUDED.state_start_time, "
            "state_event_id = EXCLUDED.state_event_id, updated_at = now() "
            "WHERE (current_fulfillments.state, current_fulfillments.state_start_time, "
            "current_fulfillments.state_event_id) IS DISTINCT FROM "
            "(EXCLUDED.state, EXCLUDED.state_start_time, EXCLUDED.state_event_id)",
            current_rows,
        )


def build(settings: Settings, codec: Codec) -> FulfillmentState:
    if not settings.fulfillment_lifecycle:
        return FulfillmentState(codec, Lifecycle.load(DEFAULT_LIFECYCLE))
    path = Path(settings.fulfillment_lifecycle)
    try:
        lifecycle = Lifecycle.load(path)
    except (OSError, ValueError) as exc:  # ValueError: TOML or content (tomllib's is one)
        reason = exc.strerror if isinstance(exc, OSError) else str(exc).removeprefix(f"{path}: ")
        raise SettingsError(f"DA_FULFILLMENT_LIFECYCLE={path}: {reason}") from None
    if lifecycle.order != "event_time":
        # The states are recomputed from the stored events, which keep event time, not log order.
        raise SettingsError(
            f"DA_FULFILLMENT_LIFECYCLE={path}: fulfillment-state computes in event time; "
            'set order = "event_time"'
        )
    return FulfillmentState(codec, lifecycle)


SPEC = DepSpec(
    name="fulfillment-state",
    description="Proctoring fulfillments: current state and time spent in each state",
    inputs=(("demux", "fulfillment"),),
    tables=("events", "current_fulfillments", "fulfillments_history"),
    migrations=Path(__file__).parent / "migrations" / "fulfillment_state",
    input_schemas=("de/fulfillment",),
    build=build,
)
