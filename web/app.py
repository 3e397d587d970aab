"""The console's HTTP face: each page rendered on the server, its live updates as server-sent
events, the static files (script, styles, the vendored chart library), /healthz and /stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from common.settings import Settings
from web import layout
from web.hub import Hub
from web.snapshot import PAGES, Snapshotter
from web.status_feed import LoadReader, StatusFeed

STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    settings: Settings, ous_states: list[str], initial_load: LoadReader | None = None
) -> FastAPI:
    """The console over ``settings``' Kafka and PostgreSQL; ``ous_states`` orders the workflow
    board's columns (the OUS life-cycle's states); ``initial_load`` reads an initial load's
    progress for /status (none: the section stays empty)."""
    feed = StatusFeed(settings, initial_load)
    snapshotter = Snapshotter(settings, feed, ous_states)
    hub = Hub(snapshotter)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        feed.start()
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            await hub.close()
            task.cancel()
            feed.close()
            snapshotter.close()

    app = FastAPI(title="da console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.hub = hub
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/fulfillments")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> JSONResponse:
        """What the console costs: snapshots computed, statements run, viewers per page."""
        return JSONResponse(
            {
                "snapshots": snapshotter.snapshots,
                "statements": snapshotter.statements,
                "viewers": dict(hub.viewers),
            }
        )

    @app.get("/events/{name}")
    async def events(name: str) -> StreamingResponse:
        _known(name)
        return StreamingResponse(
            hub.stream(name),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/{name}", response_class=HTMLResponse)
    async def page(name: str) -> HTMLResponse:
        _known(name)
        rendered = await hub.page(name)
        return HTMLResponse(layout.render(name, None if rendered is None else rendered.page))

    return app


def _known(name: str) -> None:
    if name not in PAGES:
        raise HTTPException(404, f"no page {name!r}; pages: {', '.join(PAGES)}")
