"""The HTTP face: routes, OpenAPI (at ``/docs``), health and metrics, over ``collector.service``.

FastAPI for the OpenAPI document and its ``/docs`` page, which it derives from the routes;
uvicorn (with uvloop and httptools) to serve it. The hot route reads the raw body itself: a
per-event msgspec decode is several times cheaper than a pydantic model of the same shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collector import query
from collector.apps import App
from collector.service import KEPT_OF_OVERSIZED, Answer, Collector, Unavailable
from common.settings import Settings

_JSON = "application/json"
_encoder = msgspec.json.Encoder()
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["session_id", "category", "name", "data", "timestamp"],
    "properties": {
        "session_id": {"type": "string", "example": "e2085be5-9137-4e4e-80b5-f1ffddc25423"},
        "category": {"type": "string", "example": "page interaction"},
        "name": {"type": "string", "example": "pageview"},
        "data": {"type": "object", "example": {"host": "www.consumeraffairs.com", "path": "/"}},
        "timestamp": {"type": "string", "example": "2021-01-01 09:15:27.243860"},
    },
}
_POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            _JSON: {"schema": {"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]}}
        },
    }
}


@dataclass
class Span:
    """What every read takes besides its filters: who asks, the time range, the page."""

    authorization: Annotated[str | None, Header()] = None
    since: Annotated[str | None, Query(description="inclusive, ISO 8601")] = None
    until: Annotated[str | None, Query(description="inclusive, ISO 8601")] = None
    cursor: Annotated[str | None, Query(description="next_cursor of the last page")] = None
    limit: Annotated[int, Query(ge=1, le=1000)] = 100


def _json(answer: Answer) -> Response:
    headers = {"Retry-After": str(answer.retry_after)} if answer.retry_after else None
    return Response(_encoder.encode(answer.body), answer.status, headers, media_type=_JSON)


def _bad_query(exc: query.BadQuery) -> Response:
    body = {"reason": "bad_query", "field": exc.field, "detail": exc.detail}
    return Response(_encoder.encode(body), 400, media_type=_JSON)


async def _read_body(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body, read no further than ``limit`` bytes; and whether it went past it."""
    declared = request.headers.get("content-length")
    # Declared too big: read only a head, to keep with the error.
    if declared is not None and declared.isdigit() and int(declared) > limit:
        limit = 0
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            return b"".join(chunks)[:KEPT_OF_OVERSIZED], True
    return b"".join(chunks), False


def create_app(settings: Settings) -> FastAPI:
    collector = Collector(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await collector.start()
        try:
            yield
        finally:
            await collector.stop()

    api = FastAPI(
        title="da-pipeline collector",
        summary="Trusted applications post web and mobile events; query events and errors.",
        version="1",
        lifespan=lifespan,
    )
    api.state.collector = collector

    @api.exception_handler(RequestValidationError)
    async def bad_parameter(_request: Request, exc: RequestValidationError) -> Response:
        # A malformed query parameter is the client's mistake in the request line: 400, like a
        # malformed time, not FastAPI's 422 (which here means an invalid event).
        first = exc.errors()[0] if exc.errors() else {}
        field = str(first.get("loc", ["", "?"])[-1])
        return _bad_query(query.BadQuery(field, f"{field}: {first.get('msg', 'invalid')}"))

    limit = collector.body_limit

    @api.post("/v1/events", status_code=202, openapi_extra=_POST_BODY)
    async def post_events(request: Request, authorization: str | None = Header(None)) -> Response:
        """One event or a list of them. 202 when Kafka holds every one; 400/413/422 with the
        field at fault (and recorded); 401 without a valid key; 429 and 503 with Retry-After."""
        started = asyncio.get_running_loop().time()
        who = collector.authenticate(authorization, "ingest")
        body, too_big = await _read_body(request, limit)
        app = who.name if isinstance(who, App) else None
        if too_big:
            answer = await collector.oversized(app, body)
        elif not isinstance(who, App):
            answer = await collector.reject([replace(who, body=body)], None, datetime.now(UTC))
        else:
            try:
                answer = await collector.post(who, body, started)
            except Unavailable as exc:
                answer = Answer(503, {"reason": "kafka_unavailable", "detail": str(exc)}, 1)
        collector.metrics.responses.labels(str(answer.status)).inc()
        return _json(answer)

    async def _page(
        table: query.Table, equal: dict[str, str | None], span: Span, name: str
    ) -> Response:
        who = collector.authenticate(span.authorization, "read")
        if not isinstance(who, App):
            return _json(Answer(who.status, who.to_json()))
        try:
            async with collector.pool_for(table).connection() as conn:
                items, next_cursor = await query.page(
                    conn, table, equal, span.since, span.until, span.cursor, span.limit
                )
        except query.BadQuery as exc:
            return _bad_query(exc)
        return _json(Answer(200, {name: items, "next_cursor": next_cursor}))

    @api.get("/v1/events")
    async def get_events(
        span: Annotated[Span, Depends()],
        session_id: str | None = None,
        category: str | None = None,
        app: str | None = None,
    ) -> Response:
        """Events in event-time order (then by id), a page at a time: pass ``next_cursor``."""
        equal = {"session_id": session_id, "category": category, "app": app}
        return await _page(query.EVENTS, equal, span, "events")

    @api.get("/v1/errors")
    async def get_errors(
        span: Annotated[Span, Depends()],
        app: str | None = None,
        reason: str | None = None,
        stage: str | None = None,
    ) -> Response:
        """Rejected events (by the collector, or later by GEP), oldest first."""
        equal = {"app": app, "reason": reason, "stage": stage}
        return await _page(query.ERRORS, equal, span, "errors")

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> Response:
        """Kafka and PostgreSQL both reachable: send traffic here."""
        checks = await collector.ready()
        return _json(Answer(200 if all(checks.values()) else 503, dict(checks)))

    @api.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(collector.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return api
