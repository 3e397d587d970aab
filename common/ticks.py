"""Wall-clock timers of the store DEPs: what runs on the run loop's ``tick`` (see
``common.runloop``), also when no message arrives.

A DEP whose handler has a ``tick(now, owned, cur)`` method gets it called at most once per
``TICK_INTERVAL_S``, inside a database transaction of its own, with the partitions this instance
still owns: the store processor first locks their stored offsets and drops any that another
instance has moved (it committed a batch there, so it owns that partition now). What the tick
writes, outbox rows included, commits with that transaction or not at all; the outbox relay runs
after it, so what a timer emits leaves on time on an idle pipeline. A tick's writes must be
idempotent in the database (delete what fired, or mark it): two instances may both own a
partition for a moment during a rebalance, and their transactions then take turns on the rows.

A timer that judges "nothing new arrived" (a wait past its limit) must not fire while what would
end the wait is still unread in the input: ``read_to`` gives, for each partition handed to the
tick, the wall-clock time at which its stored offset was last seen at the partition's end as the
consumer knows it (at most one offset short: the commit marker that ends every transaction of a
transactional writer), after a batch, an idle turn or before a tick: everything it held was
applied then, by this instance or, before a restart, another. A partition with a backlog, as
during an initial load, keeps its older time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

import psycopg

Cursor = psycopg.Cursor[tuple[object, ...]]
Owned = frozenset[tuple[str, int]]
ReadTo = Mapping[tuple[str, int], datetime]
TICK_INTERVAL_S = 1.0


@runtime_checkable
class TickHandler(Protocol):
    """A store DEP with timers. ``owned``: (topic, partition)s this instance owns; ``cur`` is in
    a transaction the handler does not own: it never commits and never touches Kafka.
    ``read_to``: when each of ``owned`` was last read to its end (absent: not yet)."""

    def tick(self, now: datetime, owned: Owned, read_to: ReadTo, cur: Cursor) -> None: ...


class Every:
    """True at most once per ``interval_s`` of monotonic time; the first call is due."""

    def __init__(self, interval_s: float = TICK_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval_s
        return True


def still_owned(
    cur: Cursor, group_id: str, stored: dict[tuple[str, int], int | None], owned: Owned
) -> Owned:
    """The partitions of ``owned`` whose stored offset is still where this instance left it,
    locked (``FOR SHARE``) until the tick's transaction ends, so another instance cannot commit
    a batch there meanwhile."""
    keys = sorted(k for k in owned if k in stored)
    if not keys:
        return frozenset()
    cur.execute(
        "SELECT topic, partition, next_offset FROM da_offsets WHERE consumer_group = %s "
        "AND (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[])) FOR SHARE",
        (group_id, [t for t, _ in keys], [p for _, p in keys]),
    )
    now_stored = {(str(t), int(str(p))): int(str(o)) for t, p, o in cur.fetchall()}
    return frozenset(k for k in keys if now_stored.get(k) == stored[k])
