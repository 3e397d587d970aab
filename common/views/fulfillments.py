"""Where proctoring fulfillments stand: counts per state, who waits longest, how long the states
left took (``da fulfillments`` and the console's /fulfillments page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

STATES = ("ENTERING", "WAITING", "LAUNCHING", "TESTING", "DONE")
WAIT_STATE = "WAITING"

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Waiting:
    fulfillment_id: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Left:
    """The visits that left one state: how many, average and longest whole seconds."""

    state: str
    left: int
    avg_s: float
    max_s: int


@dataclass(frozen=True)
class Summary:
    event_time_now: datetime | None  # the newest event's time: "now" in event time
    events: int
    counts: dict[str, int]
    left: list[Left]
    waiting: list[Waiting]  # longest first


def summary(conn: Conn, longest: int, with_left: bool = True) -> Summary:
    """Counts per state and the ``longest`` fulfillments waiting longest; with ``with_left`` also
    the time in each state over the whole history (a scan of it)."""
    as_of = conn.execute("SELECT max(created_at), count(*) FROM events").fetchone()
    by_state = conn.execute(
        "SELECT state, count(*) FROM current_fulfillments GROUP BY state"
    ).fetchall()
    left = (
        conn.execute(
            "SELECT state, count(*), avg(time_in_state), max(time_in_state) "
            "FROM fulfillments_history GROUP BY state ORDER BY state"
        ).fetchall()
        if with_left
        else []
    )
    waiting = conn.execute(
        "SELECT fulfillment_id, state_start_time FROM current_fulfillments "
        "WHERE state = %s ORDER BY state_start_time, fulfillment_id LIMIT %s",
        (WAIT_STATE, longest),
    ).fetchall()
    now, events = (as_of[0], int(as_of[1])) if as_of else (None, 0)
    return Summary(
        now if isinstance(now, datetime) else None,
        events,
        {str(s): int(n) for s, n in by_state},
        [Left(str(s), int(n), float(a), int(m)) for s, n, a, m in left],
        [Waiting(str(f), since) for f, since in waiting],
    )


@dataclass(frozen=True)
class Recent:
    """The states left in the last hour: per state, average time in it per 10-second bin of
    leaving, and p50 / p90 / max over the hour."""

    start: datetime
    bin_s: int
    series: dict[str, list[float | None]]  # state -> one value per bin (None: nothing left)
    quantiles: dict[str, tuple[float, float, int, int]]  # state -> (p50, p90, max, visits)


def recent(conn: Conn, now: datetime, hour_s: int = 3600, bin_s: int = 10) -> Recent:
    start = now - timedelta(seconds=hour_s)
    bins = hour_s // bin_s
    found = conn.execute(
        "SELECT state, floor(extract(epoch FROM left_at - %(start)s) / %(bin)s)::int, "
        "avg(time_in_state) FROM fulfillments_history "
        "WHERE left_at > %(start)s AND left_at <= %(now)s GROUP BY 1, 2",
        {"start": start, "now": now, "bin": bin_s},
    ).fetchall()
    series: dict[str, list[float | None]] = {}
    for state, b, mean in found:
        values = series.setdefault(str(state), [None] * bins)
        values[min(int(b), bins - 1)] = float(mean)
    q = conn.execute(
        "SELECT state, percentile_cont(0.5) WITHIN GROUP (ORDER BY time_in_state), "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY time_in_state), max(time_in_state), "
        "count(*) FROM fulfillments_history WHERE left_at > %s AND left_at <= %s GROUP BY state",
        (start, now),
    ).fetchall()
    quantiles = {str(s): (float(a), float(b), int(m), int(n)) for s, a, b, m, n in q}
    return Recent(start, bin_s, series, quantiles)


def wait_buckets(conn: Conn, now: datetime, top_minutes: int = 15) -> list[int]:
    """How many fulfillments waiting now have waited 0-1 minute, 1-2, ... up to
    ``top_minutes``, and longer (the last count)."""
    found = conn.execute(
        "SELECT least(greatest(floor(extract(epoch FROM %(now)s - state_start_time) / 60), 0), "
        "%(top)s)::int, count(*) FROM current_fulfillments WHERE state = %(state)s GROUP BY 1",
        {"now": now, "top": top_minutes, "state": WAIT_STATE},
    ).fetchall()
    counts = [0] * (top_minutes + 1)
    for minute, n in found:
        counts[int(minute)] += int(n)
    return counts
