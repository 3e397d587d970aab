"""PostgreSQL: connections and migrations.

Every state store lives in one schema (``DA_DATABASE_SCHEMA``); connections set ``search_path``
to it, so migrations and DEPs never name it. Migrations are plain SQL files applied in order
and recorded in ``da_migrations``, under an advisory lock so that instances starting together
apply each file once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from common import guard, loads, outbox, parking
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
# The generic tables any DEP may use: what it emits, what waits; and the initial loads.
CORE_SQL += outbox.TABLE_SQL + parking.TABLE_SQL + guard.TABLE_SQL + loads.TABLE_SQL


def connect(
    settings: Settings, *, autocommit: bool = False, timeout_s: float | None = None
) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(
        settings.database_url,
        autocommit=autocommit,
        connect_timeout=max(1, int(timeout_s or settings.io_timeout_s)),
        options=f"-c search_path={settings.database_schema}",
        application_name="da-pipeline",
    )
    return conn


@dataclass(frozen=True)
class Migration:
    name: str  # "<owner>/<file>", unique across DEPs
    path: Path


def migrate(settings: Settings, migrations: list[Migration]) -> list[str]:
    """Create the schema and core tables, apply the migrations not applied yet; returns them."""
    applied: list[str] = []
    with connect(settings, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(settings.database_schema)
            )
        )
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(CORE_SQL)
            done = {r[0] for r in conn.execute("SELECT name FROM da_migrations")}
            for m in migrations:
                if m.name in done:
                    continue
                log.info("applying migration %s", m.name)
                conn.execute(m.path.read_text().encode())  # a trusted file of the project's
                conn.execute("INSERT INTO da_migrations (name) VALUES (%s)", (m.name,))
                applied.append(m.name)
    return applied


def check_database(settings: Settings) -> None:
    """Raises ``psycopg.OperationalError`` (shown in one line by the CLI) when unreachable."""
    with connect(settings, autocommit=True) as conn:
        conn.execute("SELECT 1")
