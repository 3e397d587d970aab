"""An independent computation of what the fulfillment tables must hold, written from the rules
in the issue, not from ``dep.lifecycle``: a second implementation to check the first against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

TRIGGERS = {
    "Event::Welcome": "ENTERING",
    "Event::LmiConnected": "WAITING",
    "Event::LaunchStart": "LAUNCHING",
    "Event::LaunchEnd": "TESTING",
    "Event::FulfillmentEnded": "DONE",
}
ORDER = ["ENTERING", "WAITING", "LAUNCHING", "TESTING", "DONE"]


def parse(ts: str) -> datetime:
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in ts else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(ts, fmt).replace(tzinfo=UTC)


@dataclass
class Expected:
    event_ids: set[str]
    current: dict[str, tuple[str, datetime]]
    history: dict[tuple[str, str], int]


def expected_tables(rows: Iterable[Mapping[str, str]]) -> Expected:
    """``rows``: the valid raw events (duplicates allowed), as CSV dicts."""
    distinct: dict[str, Mapping[str, str]] = {}
    for r in rows:
        distinct.setdefault(r["id"], r)
    per: dict[str, list[tuple[datetime, int, str]]] = {}
    for r in distinct.values():
        per.setdefault(r["fulfillment_id"], []).append(
            (parse(r["created_at"]), int(r["id"]), r["type"])
        )
    current: dict[str, tuple[str, datetime]] = {}
    history: dict[tuple[str, str], int] = {}
    for fid, events in per.items():
        state: str | None = None
        since = datetime.min.replace(tzinfo=UTC)
        for at, _, etype in sorted(events):
            if etype not in TRIGGERS:
                continue
            target = TRIGGERS[etype]
            if state is None:
                state, since = target, at
            elif ORDER.index(target) > ORDER.index(state):
                history[(fid, state)] = int((at - since).total_seconds() // 1)
                state, since = target, at
        if state is not None:
            current[fid] = (state, since)
    return Expected(set(distinct), current, history)
