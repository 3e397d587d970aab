"""What a page is made of, and what building one may use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from common.db import Connections
from common.settings import Settings
from web.status_feed import StatusView

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class Page:
    """``sections``: element id -> inner HTML, replaced whole on each update; ``charts``: chart
    id -> the data the page's script draws; ``now_ms``: the instant waits are measured to, and
    ``tick``: whether the page's timers advance between updates (the wall clock) or hold (the
    event clock: time moves only when events do)."""

    title: str
    sections: dict[str, str]
    charts: dict[str, Any] = field(default_factory=dict)
    now_ms: int = 0
    tick: bool = False


@dataclass(frozen=True)
class Context:
    dbs: Connections  # ``dbs.of(dep)``: where that DEP's tables live
    settings: Settings
    wall_now: datetime
    status: StatusView
    ous_states: list[str]
