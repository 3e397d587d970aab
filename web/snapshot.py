"""One snapshot of the pages being watched, computed once per second for every viewer.

A page is built only while someone watches it (an open event stream, or a load in the last
``WANTED_S``); what it costs does not depend on how many watch it. The statements it runs are
counted (``Snapshotter.statements``), which /stats shows and a test checks."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import psycopg
from psycopg.abc import Params, QueryNoTemplate

from common import db
from common.settings import Settings
from web.html import unavailable
from web.pages import fulfillments, learning, status, workflow
from web.pages.base import Context, Page
from web.status_feed import StatusFeed

log = logging.getLogger(__name__)

PAGES: dict[str, Callable[[Context], Page]] = {
    "fulfillments": fulfillments.build,
    "status": status.build,
    "workflow": workflow.build,
    "learning": learning.build,
}


class _CountingCursor(psycopg.Cursor[tuple[Any, ...]]):
    """Counts each statement on its connection's ``da_statements``."""

    # Only the plain form (no template strings) is used here; the overloads need not be copied.
    def execute(  # type: ignore[override]
        self,
        query: QueryNoTemplate,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        counter = getattr(self.connection, "da_statements", None)
        if isinstance(counter, list):
            counter[0] += 1
        return super().execute(query, params, prepare=prepare, binary=binary)


@dataclass(frozen=True)
class Rendered:
    page: Page
    payload: str  # the JSON every viewer of the page is sent


class Snapshotter:
    def __init__(self, settings: Settings, feed: StatusFeed, ous_states: list[str]) -> None:
        self.settings = settings
        self.feed = feed
        self.ous_states = ous_states
        self.dbs = db.Connections(settings, prepare=self._count)
        self.counter = [0]
        self.snapshots = 0

    @property
    def statements(self) -> int:
        return self.counter[0]

    def _count(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        conn.cursor_factory = _CountingCursor
        conn.da_statements = self.counter  # type: ignore[attr-defined]

    def close(self) -> None:
        self.dbs.close()

    def compute(self, pages: set[str]) -> dict[str, Rendered]:
        """Build each page of ``pages``; a page whose tables cannot be read says so, and what to
        run, instead of failing the others."""
        self.snapshots += 1
        out = {}
        wall = datetime.now(UTC)
        for name in sorted(pages):
            try:
                ctx = Context(self.dbs, self.settings, wall, self.feed.latest(), self.ous_states)
                page = PAGES[name](ctx)
            except psycopg.Error as exc:
                log.warning("page %s not built: %s", name, exc)
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                fix = (
                    "da db migrate"
                    if isinstance(exc, psycopg.errors.UndefinedTable)
                    else "da stack status   (or check DA_DATABASE_URL)"
                )
                page = Page(name, {"banner": unavailable("The tables", why, fix)})
                self.dbs.close()
            out[name] = Rendered(page, payload(page, self.snapshots))
        return out


def payload(page: Page, seq: int) -> str:
    return json.dumps(
        {
            "seq": seq,
            "sections": page.sections,
            "charts": page.charts,
            "now_ms": page.now_ms,
            "tick": page.tick,
        },
        separators=(",", ":"),
    )
