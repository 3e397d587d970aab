"""The one loop that computes snapshots and hands each to every viewer.

Once a second the pages someone watches are built (in a worker thread: the queries block) and
every open event stream of a page is sent the same serialized payload. A viewer never triggers
a query of its own: a first page load waits for the next snapshot that includes its page."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

from web.snapshot import PAGES, Rendered, Snapshotter

log = logging.getLogger(__name__)

PERIOD_S = 1.0
WANTED_S = 30.0  # a page loaded this recently is still built, for its event stream to come
FIRST_WAIT_S = 15.0


class Hub:
    def __init__(self, snapshotter: Snapshotter) -> None:
        self.snapshotter = snapshotter
        self.latest: dict[str, Rendered] = {}
        self.version = 0
        # Set, then replaced, at each new snapshot. Not a Condition: on Python 3.11 a viewer
        # leaving (its wait cancelled) can leave a Condition's lock unreleased, and every stream
        # and the snapshot loop then wait on it for good.
        self._news = asyncio.Event()
        self.viewers: Counter[str] = Counter()
        self.loaded: dict[str, float] = {}
        self.closing = False
        self.loop: asyncio.AbstractEventLoop | None = None

    def wanted(self) -> set[str]:
        now = time.monotonic()
        return {
            p for p in PAGES if self.viewers[p] > 0 or now - self.loaded.get(p, -1e9) < WANTED_S
        }

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        # A first page built before the first status sample would call itself stale.
        await asyncio.to_thread(self.snapshotter.feed.sampled.wait, FIRST_WAIT_S)
        while not self.closing:
            began = time.monotonic()
            pages = self.wanted()
            if pages:
                try:
                    built = await asyncio.to_thread(self.snapshotter.compute, pages)
                except Exception:
                    log.exception("snapshot failed")
                else:
                    self.latest.update(built)
                    self.version += 1
                    self._news.set()
                    self._news = asyncio.Event()
            await asyncio.sleep(max(0.05, PERIOD_S - (time.monotonic() - began)))

    def stop_soon(self) -> None:
        """From a signal handler: end every event stream at its next turn."""
        self.closing = True
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(lambda: loop.create_task(self.close()))

    async def close(self) -> None:
        self.closing = True
        self._news.set()

    async def _next(self, seen: int, timeout_s: float) -> bool:
        """Wait for a snapshot newer than ``seen``; False when none came in time."""
        news = self._news
        if self.version != seen or self.closing:
            return True
        try:
            await asyncio.wait_for(news.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def page(self, name: str) -> Rendered | None:
        """The page as of the newest snapshot that has it (waiting for one if need be)."""
        self.loaded[name] = time.monotonic()
        deadline = time.monotonic() + FIRST_WAIT_S
        while name not in self.latest and not self.closing:
            left = deadline - time.monotonic()
            if left <= 0 or not await self._next(self.version, left):
                break
        return self.latest.get(name)

    async def stream(self, name: str) -> AsyncIterator[str]:
        """Server-sent events: the page's payload after every snapshot, until the viewer leaves
        or the server stops. ``retry`` makes a browser reconnect within a second."""
        self.viewers[name] += 1
        try:
            yield "retry: 1000\n\n"
            seen = -1
            while not self.closing:
                if self.version != seen:
                    seen = self.version
                    rendered = self.latest.get(name)
                    if rendered is not None:
                        yield f"id: {seen}\ndata: {rendered.payload}\n\n"
                if not await self._next(seen, 15.0):
                    yield ": still here\n\n"  # keeps proxies from closing an idle stream
        finally:
            self.viewers[name] -= 1
