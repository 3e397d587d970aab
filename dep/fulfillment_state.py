"""DEP ``fulfillment-state``: where every proctoring fulfillment stands, and how long it spent in
each state (a visual tracker of the proctoring workplace).

Tables: ``events`` (every distinct raw event), ``current_fulfillments`` and
``fulfillments_history``, computed by the life-cycle engine (``dep.lifecycle``, configured by
``fulfillment_states.toml``: forward only, event time). A fulfillment's new trigger events that
come after the last one applied (in event time) are applied on top of its current state; one
that got a late event is recomputed from all its stored trigger events. Both give what replaying
every distinct event in event time gives, so the result is the same whatever order, and however
many times, the events arrive.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import msgspec

from common.codec import Codec
from common.events import FulfillmentEvent
from common.runloop import Message
from common.settings import Settings, SettingsError
from common.store import Cursor
from dep.lifecycle import Entered, Left, Lifecycle, Progress
from dep.spec import DepSpec

DEFAULT_LIFECYCLE = Path(__file__).with_name("fulfillment_states.toml")
Trigger = tuple[str, str, datetime]  # event_id, event_type, created_at

# Emptied by every commit; created once per connection (``prepare``).
_INCOMING = (
    "CREATE TEMP TABLE IF NOT EXISTS incoming_events "
    "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_UPSERT_CURRENT = """
INSERT INTO current_fulfillments AS c (fulfillment_id, state, state_start_time, state_event_id,
    last_event_at, last_event_id)
SELECT * FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::text[], %b::timestamptz[],
                     %b::text[])
ON CONFLICT (fulfillment_id) DO UPDATE SET
    state = EXCLUDED.state, state_start_time = EXCLUDED.state_start_time,
    state_event_id = EXCLUDED.state_event_id, last_event_at = EXCLUDED.last_event_at,
    last_event_id = EXCLUDED.last_event_id,
    updated_at = CASE WHEN (c.state, c.state_start_time, c.state_event_id)
        IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.state_start_time, EXCLUDED.state_event_id)
        THEN now() ELSE c.updated_at END
WHERE (c.state, c.state_start_time, c.state_event_id, c.last_event_at, c.last_event_id)
    IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.state_start_time, EXCLUDED.state_event_id,
                      EXCLUDED.last_event_at, EXCLUDED.last_event_id)
"""


def catch_up(
    lifecycle: Lifecycle, row: Progress | None, has_row: bool, new: list[Trigger]
) -> tuple[Progress | None, list[Left]] | None:
    """A fulfillment's new trigger events applied without reading its stored history, or None
    when that history must be replayed: a late event; a row without recorded progress; no row
    where a fulfillment may have events that entered no state (a trigger that cannot start it).
    ``row``: its progress as stored in ``current_fulfillments``."""
    if row is not None:
        return lifecycle.advance(row, new)
    if not has_row and lifecycle.triggers_all_start:
        return lifecycle.from_scratch(new)  # no row, so no trigger event stored
    return None


class FulfillmentState:
    def __init__(self, codec: Codec, lifecycle: Lifecycle) -> None:
        self.codec = codec
        self.lifecycle = lifecycle
        self.trigger_types = sorted(lifecycle.triggers)
        self._prepared: weakref.WeakSet[object] = weakref.WeakSet()
        self._json = msgspec.json.Encoder()

    def prepare(self, cur: Cursor) -> None:
        cur.execute(_INCOMING)
        self._prepared.add(cur.connection)

    def decode(self, msg: Message) -> FulfillmentEvent:
        return FulfillmentEvent.decode(self.codec, msg.value())

    def handle(self, events: Sequence[FulfillmentEvent], cur: Cursor) -> None:
        distinct: dict[str, FulfillmentEvent] = {}
        for e in events:
            distinct.setdefault(e.event_id, e)
        if cur.connection not in self._prepared:
            cur.execute(_INCOMING)  # run by a caller that does not prepare connections
        # Rows left by an earlier call in this transaction (events handled one by one) are
        # already in ``events``: inserted again, they conflict and are not returned.
        json = self._json.encode
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
                        json(e.attributes).decode(),
                    )
                )
        cur.execute(
            "INSERT INTO events (event_id, fulfillment_id, event_type, created_at, created_by_id,"
            " payload) SELECT event_id, fulfillment_id, event_type, created_at, created_by_id,"
            " payload FROM incoming_events ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )
        new: dict[str, list[Trigger]] = {}
        triggers = self.lifecycle.triggers
        for (event_id,) in cur.fetchall():
            added = distinct.get(str(event_id))
            if added is not None and added.event_type in triggers:
                new.setdefault(added.fulfillment_id, []).append(
                    (added.event_id, added.event_type, added.occurred_at)
                )
        if new:
            self._apply(new, cur)

    def _apply(self, new: dict[str, list[Trigger]], cur: Cursor) -> None:
        """Each fulfillment's new trigger events on top of where it stood, or, for one that got
        a late event (or has no recorded progress), its whole stored history replayed."""
        ids = sorted(new)
        # One instance owns a fulfillment's partition, but while partitions are being added two
        # may briefly handle the same fulfillment: serialize them, so each reads the other's
        # committed events and state. Sorted, so two such transactions cannot deadlock.
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext(f)) FROM unnest(%s::text[]) AS f ORDER BY f",
            (ids,),
        )
        cur.execute(
            "SELECT fulfillment_id, state, state_start_time, state_event_id, last_event_at, "
            "last_event_id FROM current_fulfillments WHERE fulfillment_id = ANY(%s)",
            (ids,),
        )
        stored: dict[str, Progress | None] = {}
        for fid, state, at, event_id, last_at, last_id in cur.fetchall():
            stored[str(fid)] = (
                None
                if last_at is None
                else Progress(Entered(str(state), at, str(event_id)), last_at, str(last_id))  # type: ignore[arg-type]
            )
        done: dict[str, tuple[Progress | None, list[Left]]] = {}
        replay: list[str] = []
        for fid in ids:
            result = catch_up(self.lifecycle, stored.get(fid), fid in stored, new[fid])
            if result is None:
                replay.append(fid)
            else:
                done[fid] = result
        if replay:
            done |= self._replay(replay, cur)
        self._write(done, cur)

    def _replay(
        self, fulfillment_ids: list[str], cur: Cursor
    ) -> dict[str, tuple[Progress | None, list[Left]]]:
        """Recompute from every stored trigger event; the history is written anew."""
        cur.execute(
            "SELECT fulfillment_id, event_id, event_type, created_at FROM events "
            "WHERE fulfillment_id = ANY(%s) AND event_type = ANY(%s)",
            (fulfillment_ids, self.trigger_types),
        )
        by_entity: dict[str, list[Trigger]] = {fid: [] for fid in fulfillment_ids}
        for fid, event_id, event_type, created_at in cur.fetchall():
            by_entity[str(fid)].append((str(event_id), str(event_type), created_at))  # type: ignore[arg-type]
        cur.execute(
            "DELETE FROM fulfillments_history WHERE fulfillment_id = ANY(%s)", (fulfillment_ids,)
        )
        return {fid: self.lifecycle.from_scratch(evs) for fid, evs in by_entity.items()}

    def _write(self, done: dict[str, tuple[Progress | None, list[Left]]], cur: Cursor) -> None:
        with cur.copy(
            "COPY fulfillments_history (fulfillment_id, state, time_in_state, "
            "entered_at, left_at, entered_event_id, left_event_id) FROM STDIN"
        ) as copy:
            for fid, (_, left) in done.items():
                for h in left:
                    copy.write_row(
                        (
                            fid,
                            h.state,
                            h.seconds,
                            h.entered_at,
                            h.left_at,
                            h.entered_event_id,
                            h.left_event_id,
                        )
                    )
        rows = [
            (fid, p.current.state, p.current.at, p.current.event_id, p.last_at, p.last_event_id)
            for fid, (p, _) in sorted(done.items())
            if p is not None and p.current is not None
        ]
        if rows:
            cur.execute(_UPSERT_CURRENT, [list(col) for col in zip(*rows, strict=True)])


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
