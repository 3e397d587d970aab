"""PostgreSQL: connections and migrations.

Every state store lives in one schema (``DA_DATABASE_SCHEMA``); connections set ``search_path``
to it, so migrations and DEPs never name it. A DEP's store may live in a database of its own
(``Settings.database_url_for``): its tables and the core tables it writes (offsets, outbox, parked
and in-flight rows) are created there, so that its commit stays one local transaction.
Migrations are plain SQL files applied in order and recorded in ``da_migrations`` of the database
they were applied to, under an advisory lock so that instances starting together apply each file
once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import psycopg
from psycopg import sql

from common import inflight, loads, outbox, parking
from common.settings import Settings

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x6461_6D69  # any constant shared by every instance: "dami"

CORE_SQL = """
CREATE TABLE IF NOT EXISTS da_migrations (
    name text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS da_offsets (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
"""
# The generic tables any DEP may use: what it emits, what waits. (In every database: a DEP keeps
# them beside its own.)
CORE_SQL += outbox.TABLE_SQL + parking.TABLE_SQL + inflight.TABLE_SQL
# What no DEP owns, in the shared database only: the initial loads (``da load``).
SHARED_SQL = loads.TABLE_SQL


def connect(
    settings: Settings,
    *,
    autocommit: bool = False,
    timeout_s: float | None = None,
    dep: str | None = None,
) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the shared database, or to ``dep``'s when it has its own."""
    # Every statement planned for its parameters: psycopg prepares a statement run five times,
    # and PostgreSQL may then keep one generic plan for it, made while a DEP's tables were
    # small and guessing ten keys for ``= ANY($1)``. One such plan had every later batch of
    # fulfillment-state scan current_fulfillments comparing each row with each of its keys:
    # 12-15k instead of 25k DEs/s on one input, by when the plan was made. Planning costs
    # far less (tests/integration/test_db_plans.py).
    conn = psycopg.connect(
        settings.database_url if dep is None else settings.database_url_for(dep),
        autocommit=autocommit,
        connect_timeout=max(1, int(timeout_s or settings.io_timeout_s)),
        options=f"-c search_path={settings.database_schema} -c plan_cache_mode=force_custom_plan",
        application_name="da-pipeline",
    )
    return conn


# What readers get: rows of any type (the views unpack them), as psycopg hands them out.
Conn = psycopg.Connection[tuple[Any, ...]]


class Connections:
    """A reader's connections, one per distinct database, opened when first asked for: a DEP
    kept in a database of its own is read there, and DEPs sharing a database share one
    connection (so ``of(a) is of(b)`` tells a reader whether one query can join their tables).
    ``prepare`` runs on each new connection. Autocommit: readers only."""

    def __init__(self, settings: Settings, prepare: Callable[[Conn], None] | None = None) -> None:
        self.settings = settings
        self._prepare = prepare
        self._open: dict[str, Conn] = {}

    def of(self, dep: str | None = None) -> Conn:
        """The connection to ``dep``'s database (the shared one for None)."""
        return self._at(
            self.settings.database_url if dep is None else self.settings.database_url_for(dep)
        )

    def every(self) -> list[Conn]:
        """One connection to every database (the shared one first)."""
        return [self._at(url) for url in self.settings.database_urls()]

    def _at(self, url: str) -> Conn:
        conn = self._open.get(url)
        if conn is None or conn.closed or conn.broken:
            conn = cast(Conn, connect(replace(self.settings, database_url=url), autocommit=True))
            if self._prepare is not None:
                self._prepare(conn)
            self._open[url] = conn
        return conn

    def close(self) -> None:
        for conn in self._open.values():
            conn.close()
        self._open.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Migration:
    name: str  # "<owner>/<file>", unique across DEPs
    path: Path

    @property
    def owner(self) -> str:
        """The DEP (or component) whose tables it makes: it runs in the owner's database."""
        return self.name.partition("/")[0]


def migrate(settings: Settings, migrations: list[Migration]) -> list[str]:
    """In every database: create the schema and core tables, apply the migrations of the owners
    that live there not applied yet; returns them."""
    by_url: dict[str, list[Migration]] = {url: [] for url in settings.database_urls()}
    for m in migrations:
        by_url[settings.database_url_for(m.owner)].append(m)
    applied: list[str] = []
    for url, owned in by_url.items():
        shared = url == settings.database_url
        applied += _migrate_one(replace(settings, database_url=url), owned, shared)
    return applied


def _migrate_one(settings: Settings, migrations: list[Migration], shared: bool) -> list[str]:
    applied: list[str] = []
    with connect(settings, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(settings.database_schema)
            )
        )
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(CORE_SQL + SHARED_SQL if shared else CORE_SQL)
            done = {r[0] for r in conn.execute("SELECT name FROM da_migrations")}
            for m in migrations:
                if m.name in done:
                    continue
                # DEBUG: callers report what was applied (`da db migrate` prints it).
                log.debug("applying migration %s", m.name)
                conn.execute(m.path.read_text().encode())  # a trusted file of the project's
                conn.execute("INSERT INTO da_migrations (name) VALUES (%s)", (m.name,))
                applied.append(m.name)
    return applied


def each_database(settings: Settings) -> list[Settings]:
    """The settings once per distinct database (the shared one first): for readers of what every
    DEP keeps, such as parked events."""
    return [replace(settings, database_url=url) for url in settings.database_urls()]


def check_database(settings: Settings) -> None:
    """Raises ``psycopg.OperationalError`` (shown in one line by the CLI) when unreachable."""
    with connect(settings, autocommit=True) as conn:
        conn.execute("SELECT 1")
