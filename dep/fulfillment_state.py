"""DEP ``fulfillment-state``: where every proctoring fulfillment stands, and how long it spent in
each state (a visual tracker of the proctoring workplace).

Tables: ``events`` (every distinct raw event), ``current_fulfillments`` and
``fulfillments_history``, computed by the life-cycle engine (``dep.lifecycle``, configured by
``fulfillment_states.toml``: forward only, event time). A fulfillment's new trigger events that
come after the last one applied (in event time) are applied on top of its current state; one
that got a late event is recomputed from all its stored trigger events. Both give what replaying
every distinct event in event time gives, so the result is the same whatever order, and however
many times, the events arrive.

Its wall-clock timer (``tick``, ``dep.wait_timer``) emits ``fulfillment.wait_exceeded`` once per
fulfillment and state visit for a wait past ``DA_WAIT_SLA_S``; it reads each fulfillment's input
partition (``current_fulfillments.input_partition``) to judge the wait only by what that
partition has delivered.
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
from common.ticks import Owned, ReadTo
from common.topics import Topics
from dep.lifecycle import Entered, Left, Lifecycle, Progress
from dep.spec import DepSpec
from dep.wait_timer import NAME, WAIT_EXCEEDED, WaitTimer

DEFAULT_LIFECYCLE = Path(__file__).with_name("fulfillment_states.toml")
Trigger = tuple[str, str, datetime]  # event_id, event_type, created_at

# Emptied by every commit; created once per connection (``prepare``).
_INCOMING = (
    "CREATE TEMP TABLE IF NOT EXISTS incoming_events "
    "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_UPSERT_CURRENT = """
INSERT INTO current_fulfillments AS c (fulfillment_id, state, state_start_time, state_event_id,
    last_event_at, last_event_id, input_partition)
SELECT * FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::text[], %b::timestamptz[],
                     %b::text[], %b::int[])
ON CONFLICT (fulfillment_id) DO UPDATE SET
    state = EXCLUDED.state, state_start_time = EXCLUDED.state_start_time,
    state_event_id = EXCLUDED.state_event_id, last_event_at = EXCLUDED.last_event_at,
    last_event_id = EXCLUDED.last_event_id,
    input_partition = coalesce(EXCLUDED.input_partition, c.input_partition),
    updated_at = CASE WHEN (c.state, c.state_start_time, c.state_event_id)
        IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.state_start_time, EXCLUDED.state_event_id)
        THEN now() ELSE c.updated_at END
WHERE (c.state, c.state_start_time, c.state_event_id, c.last_event_at, c.last_event_id,
       c.input_partition)
    IS DISTINCT FROM (EXCLUDED.state, EXCLUDED.state_start_time, EXCLUDED.state_event_id,
                      EXCLUDED.last_event_at, EXCLUDED.last_event_id,
                      coalesce(EXCLUDED.input_partition, c.input_partition))
"""


class Arrived(msgspec.Struct, frozen=True):
    """A fulfillment DE and the input partition it came on (what the wait timer reads by)."""

    event: FulfillmentEvent
    partition: int


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
        self.timer = WaitTimer(
            codec,
            topics.sink_bucket("demux", "fulfillment"),
            topics.sink("dep", WAIT_EXCEEDED),
            wait_sla_s,
            max_hops,
        )
        self._prepared: weakref.WeakSet[object] = weakref.WeakSet()
        self._json = msgspec.json.Encoder()

    def prepare(self, cur: Cursor) -> None:
        cur.execute(_INCOMING)
        self._prepared.add(cur.connection)

    def decode(self, msg: Message) -> Arrived:
        return Arrived(FulfillmentEvent.decode(self.codec, msg.value()), msg.partition() or 0)

    def tick(self, now: datetime, owned: Owned, read_to: ReadTo, cur: Cursor) -> None:
        self.timer.tick(now, owned, read_to, cur)

    def handle(self, events: Sequence[Arrived], cur: Cursor) -> None:
        distinct: dict[str, FulfillmentEvent] = {}
        partitions: dict[str, int] = {}
        for a in events:
            distinct.setdefault(a.event.event_id, a.event)
            partitions[a.event.fulfillment_id] = a.partition
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
            self._apply(new, partitions, cur)

    def _apply(
        self, new: dict[str, list[Trigger]], partitions: dict[str, int], cur: Cursor
    ) -> None:
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
        self._write(done, partitions, cur)

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

    def _write(
        self,
        done: dict[str, tuple[Progress | None, list[Left]]],
        partitions: dict[str, int],
        cur: Cursor,
    ) -> None:
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
            (
                fid,
                p.current.state,
                p.current.at,
                p.current.event_id,
                p.last_at,
                p.last_event_id,
                partitions.get(fid),
            )
            for fid, (p, _) in sorted(done.items())
            if p is not None and p.current is not None
        ]
        if rows:
            cur.execute(_UPSERT_CURRENT, [list(col) for col in zip(*rows, strict=True)])


def build(settings: Settings, codec: Codec) -> FulfillmentState:
    if not settings.fulfillment_lifecycle:
        return _build(settings, codec, Lifecycle.load(DEFAULT_LIFECYCLE))
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
    return _build(settings, codec, lifecycle)


def _build(settings: Settings, codec: Codec, lifecycle: Lifecycle) -> FulfillmentState:
    topics = Topics(settings.namespace)
    return FulfillmentState(codec, lifecycle, topics, settings.wait_sla_s, settings.max_hops)


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
