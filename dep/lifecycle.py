"""An entity life-cycle as data: ordered states, and the event types that move into them.

``replay`` is the whole rule set: take an entity's distinct events in event-time order and apply
them. DEPs recompute from the stored events instead of patching state incrementally, so that
late, duplicated and reordered events give exactly what the sorted sequence gives.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Entered:
    state: str
    at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class Left:
    state: str
    entered_at: datetime
    left_at: datetime
    seconds: int
    entered_event_id: str
    left_event_id: str


def order_key(created_at: datetime, event_id: str) -> tuple[datetime, int, int, str]:
    """Event-time order: by time, then by id; numeric ids compare as numbers."""
    if event_id.isascii() and event_id.isdigit():
        return (created_at, 0, int(event_id), "")
    return (created_at, 1, 0, event_id)


def whole_seconds(start: datetime, end: datetime) -> int:
    delta = end - start
    return max(0, delta.days * 86_400 + delta.seconds)  # days included; sub-second dropped


@dataclass(frozen=True)
class Lifecycle:
    states: tuple[str, ...]
    triggers: Mapping[str, str]

    def __post_init__(self) -> None:
        if len(set(self.states)) != len(self.states) or not self.states:
            raise ValueError("states must be a non-empty list without repeats")
        unknown = {s for s in self.triggers.values() if s not in self.states}
        if unknown:
            raise ValueError(f"triggers name unknown states: {sorted(unknown)}")

    @classmethod
    def load(cls, path: Path) -> Lifecycle:
        data = tomllib.loads(path.read_text())
        try:
            return cls(tuple(data["states"]), dict(data["triggers"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    def replay(
        self, events: Iterable[tuple[str, str, datetime]]
    ) -> tuple[Entered | None, list[Left]]:
        """``events``: (event_id, event_type, created_at), any order, no duplicate ids."""
        rank = {s: i for i, s in enumerate(self.states)}
        current: Entered | None = None
        history: list[Left] = []
        for event_id, event_type, at in sorted(events, key=lambda e: order_key(e[2], e[0])):
            target = self.triggers.get(event_type)
            if target is None:
                continue
            if current is None:
                current = Entered(target, at, event_id)
            elif rank[target] > rank[current.state]:
                history.append(
                    Left(
                        current.state,
                        current.at,
                        at,
                        whole_seconds(current.at, at),
                        current.event_id,
                        event_id,
                    )
                )
                current = Entered(target, at, event_id)
        return current, history
