"""The collector's state and what it does per request, apart from the HTTP framework: who is
asking (API key), whether they may (rate), the post itself, and recording rejections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from psycopg_pool import AsyncConnectionPool

from collector import apps, query
from collector.eventtypes import DEFAULT_DIR, EventTypes
from collector.ingest import RECORD_HEADROOM, Ingest, Rejected, Rejection
from collector.produce import AsyncProducer, NotAcknowledged, TooLarge
from collector.ratelimit import RateLimits
from common.kafka import make_collector_producer
from common.settings import Settings, SettingsError
from common.topics import Topics

log = logging.getLogger(__name__)

# An unauthenticated client could flood the errors table; past this rate its rejections are
# still answered and counted, but no longer recorded.
ANONYMOUS_RECORD_RATE = 100.0
KEPT_OF_OVERSIZED = 4096


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, object]
    retry_after: int | None = None


class Unavailable(Exception):
    """Kafka did not acknowledge in time: 503 with Retry-After."""


def body_limit(settings: Settings) -> int:
    """The largest body answered other than 413: ``DA_COLLECTOR_MAX_BODY_BYTES``, but never more
    than a record can carry (``DA_MAX_MESSAGE_BYTES`` less the room for headers), so that even a
    refused body is kept whole in its dead letter."""
    limit = min(settings.collector_max_body_bytes, settings.max_message_bytes - RECORD_HEADROOM)
    if limit < 1024:
        raise SettingsError(
            f"DA_MAX_MESSAGE_BYTES={settings.max_message_bytes} leaves no room for an event: "
            f"the collector needs at least {1024 + RECORD_HEADROOM}"
        )
    return limit


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.responses = Counter(
            "collector_responses", "Answers to POST /v1/events", ["status"], registry=self.registry
        )
        self.events = Counter(
            "collector_events_accepted", "Events acknowledged by Kafka", registry=self.registry
        )
        self.rejected = Counter(
            "collector_events_rejected", "Events refused", ["reason"], registry=self.registry
        )
        self.ack_seconds = Histogram(
            "collector_ack_seconds",
            "From request to broker acknowledgement",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )


class Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        types_dir = Path(settings.collector_event_types or DEFAULT_DIR)
        types = EventTypes.load(
            types_dir, accept_unknown=settings.collector_unknown_types == "accept"
        )
        self.ingest = Ingest(
            Topics(settings.namespace),
            types,
            max_skew_s=settings.collector_max_skew_s,
            max_batch=settings.collector_max_batch,
            max_message_bytes=settings.max_message_bytes,
        )
        self.body_limit = body_limit(settings)
        self.limits = RateLimits(settings.collector_rate_limit)
        self.anonymous = RateLimits(ANONYMOUS_RECORD_RATE)
        self.metrics = Metrics()
        self.apps: dict[bytes, apps.App] = {}
        self.producer: AsyncProducer | None = None
        self.pool: AsyncConnectionPool | None = None  # the shared database: applications
        # By URL: the shared pool, and one per database a DEP the query API reads lives in.
        self.pools: dict[str, AsyncConnectionPool] = {}
        self._refresh: asyncio.Task[None] | None = None

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        for url in [s.database_url, *(s.database_url_for(t.owner) for t in query.TABLES)]:
            if url not in self.pools:
                self.pools[url] = AsyncConnectionPool(
                    url,
                    min_size=1,
                    max_size=4,
                    # UTC: every stored time is one Python can represent (in a zone west of
                    # UTC, 0001-01-01T00:00Z would read back as a date before year 1).
                    kwargs={
                        "options": f"-c search_path={s.database_schema} -c timezone=UTC",
                        "autocommit": True,
                    },
                    timeout=s.io_timeout_s,
                    open=False,
                )
                await self.pools[url].open(wait=True, timeout=s.io_timeout_s)
        self.pool = self.pools[s.database_url]
        await self.reload_apps()
        self._refresh = asyncio.create_task(self._refresh_apps())
        self.producer = AsyncProducer(make_collector_producer(s))

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        if self.producer is not None:
            await asyncio.to_thread(self.producer.close, self.settings.io_timeout_s)
        for pool in self.pools.values():
            await pool.close()

    def pool_for(self, table: query.Table) -> AsyncConnectionPool:
        """The pool of the database the DEP keeping ``table`` lives in."""
        return self.pools[self.settings.database_url_for(table.owner)]

    async def reload_apps(self) -> None:
        assert self.pool is not None  # start() opened it before any request is served
        async with self.pool.connection() as conn:
            self.apps = await apps.active_by_hash(conn)

    async def _refresh_apps(self) -> None:
        while True:
            await asyncio.sleep(self.settings.collector_apps_refresh_s)
            try:
                await self.reload_apps()
            except Exception as exc:  # keep serving with the table we have
                log.warning("cannot re-read the applications, keeping the last ones: %s", exc)

    # -- requests --------------------------------------------------------------------------
    def authenticate(self, authorization: str | None, scope: str) -> apps.App | Rejection:
        if not authorization:
            return Rejection(401, "missing_key", "send the API key as Authorization: Bearer <key>")
        scheme, _, key = authorization.partition(" ")
        app = self.apps.get(apps.key_hash(key.strip())) if scheme.lower() == "bearer" else None
        if app is None:
            # Unknown and revoked keys look alike on purpose; the key itself is never logged.
            return Rejection(401, "invalid_key", "the API key is unknown or revoked")
        if scope not in app.scopes:
            return Rejection(403, "forbidden", f"this application lacks the {scope!r} scope")
        return app

    async def post(self, app: apps.App, body: bytes, started: float) -> Answer:
        now = datetime.now(UTC)
        try:
            raws, single = self.ingest.split(body)
            wait = self.limits.take(app.name, app.rate_limit, len(raws))
            if wait:
                return Answer(429, {"reason": "rate_limited", "detail": "slow down"}, wait)
            records = self.ingest.prepare(app.name, raws, single, now)
        except Rejected as exc:
            return await self.reject(exc.rejections, app.name, now)
        assert self.producer is not None
        try:
            await self.producer.send(records, self.settings.collector_ack_timeout_s)
        except TooLarge as exc:
            # ``prepare`` sized every record against DA_MAX_MESSAGE_BYTES: the broker's limit is
            # lower than that setting says.
            log.error(
                "the broker refused a record as too large; is DA_MAX_MESSAGE_BYTES above "
                "the topic's max.message.bytes? %s",
                exc,
            )
            r = Rejection(413, "event_too_large", f"the broker refused it: {exc}")
            return await self.reject([r], app.name, now)
        except NotAcknowledged as exc:
            log.warning(
                "post of %d events from %s not acknowledged: %s", len(records), app.name, exc
            )
            raise Unavailable(str(exc)) from None
        self.metrics.events.inc(len(records))
        self.metrics.ack_seconds.observe(asyncio.get_running_loop().time() - started)
        return Answer(202, {"accepted": len(records)})

    async def reject(self, rejections: list[Rejection], app: str | None, now: datetime) -> Answer:
        """Answer the first fault's status with every fault, and record each one."""
        for r in rejections:
            self.metrics.rejected.labels(r.reason).inc()
        if app is not None or not self.anonymous.take("", None, len(rejections)):
            await self._record(rejections, app, now)
        status = rejections[0].status
        if len(rejections) == 1 and rejections[0].index is None:
            return Answer(status, rejections[0].to_json())
        return Answer(
            status, {"reason": "invalid_events", "errors": [r.to_json() for r in rejections]}
        )

    async def _record(self, rejections: list[Rejection], app: str | None, now: datetime) -> None:
        assert self.producer is not None
        letters = [self.ingest.dead_letter(r, app, now) for r in rejections]
        try:
            await self.producer.send(letters, self.settings.collector_ack_timeout_s)
        except NotAcknowledged as exc:  # TooLarge too: the answer must not become a 500
            # The client gets its 4xx all the same: its request was wrong either way.
            log.warning("could not record %d rejected events: %s", len(letters), exc)

    async def oversized(self, app: str | None, head: bytes) -> Answer:
        limit = self.body_limit
        r = Rejection(
            413,
            "body_too_large",
            f"the body exceeds {limit} bytes (first {KEPT_OF_OVERSIZED} kept)",
            body=head[:KEPT_OF_OVERSIZED],
        )
        return await self.reject([r], app, datetime.now(UTC))

    async def ready(self) -> dict[str, bool]:
        kafka = self.producer is not None and await asyncio.to_thread(self.producer.reachable, 2.0)
        database = False
        if self.pool is not None:
            try:
                async with self.pool.connection(timeout=2.0) as conn:
                    await conn.execute("SELECT 1")
                database = True
            except Exception as exc:
                log.warning("readiness: database: %s", exc)
        return {"kafka": kafka, "database": database}
