"""Trusted applications: API keys, stored as hashes, and the in-memory table the collector checks.

A key is 32 random bytes, so a fast hash (SHA-256) cannot be reversed by trying guesses; a slow
password hash would only cost milliseconds on every post. The collector never looks a key up in
the database per request: it re-reads the (small) applications table every
``DA_COLLECTOR_APPS_REFRESH_S``, so an unknown key costs a dict lookup, and a revocation takes
effect within that interval.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import psycopg

from common.db import Migration

MIGRATIONS = [
    Migration(f"collector/{p.name}", p)
    for p in sorted((Path(__file__).parent / "migrations").glob("*.sql"))
]
SCOPES = ("ingest", "read")
KEY_PREFIX = "da_"


class AppError(Exception):
    """A request about applications that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class App:
    name: str
    scopes: tuple[str, ...]
    rate_limit: float | None
    created_at: datetime | None = None
    revoked_at: datetime | None = None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


Conn = psycopg.Connection[tuple[object, ...]]


def add(conn: Conn, name: str, scopes: tuple[str, ...], rate_limit: float | None) -> str:
    """Register an application; returns its key (the only time it is seen)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise AppError(f"scopes must be among {', '.join(SCOPES)}; got {sorted(unknown)}")
    if rate_limit is not None and rate_limit <= 0:
        raise AppError("--rate must be positive")
    key = new_key()
    # A revoked name can be taken again: the new application replaces the revoked one's row.
    cur = conn.execute(
        "INSERT INTO collector_apps (name, key_hash, scopes, rate_limit) "
        "VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET key_hash = excluded.key_hash, "
        "scopes = excluded.scopes, rate_limit = excluded.rate_limit, created_at = now(), "
        "revoked_at = NULL, previous_key_hash = NULL, previous_key_expires_at = NULL "
        "WHERE collector_apps.revoked_at IS NOT NULL",
        (name, key_hash(key), list(scopes), rate_limit),
    )
    if cur.rowcount != 1:
        raise AppError(f"an application named {name!r} exists already (`da apps rotate` it)")
    return key


def rotate(conn: Conn, name: str, grace_s: float) -> tuple[str, datetime]:
    """A new key for an active application; the old one stays valid for ``grace_s`` seconds.
    Returns the new key and when the old one stops working."""
    if grace_s < 0:
        raise AppError("--grace must not be negative")
    key = new_key()
    row = conn.execute(
        "UPDATE collector_apps SET previous_key_hash = key_hash, key_hash = %s, "
        "previous_key_expires_at = now() + make_interval(secs => %s) "
        "WHERE name = %s AND revoked_at IS NULL RETURNING previous_key_expires_at",
        (key_hash(key), grace_s, name),
    ).fetchone()
    if row is None:
        raise AppError(f"no active application named {name!r} (see `da apps list`)")
    return key, cast(datetime, row[0])


def revoke(conn: Conn, name: str) -> None:
    cur = conn.execute(
        "UPDATE collector_apps SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL",
        (name,),
    )
    if cur.rowcount != 1:
        raise AppError(f"no active application named {name!r} (see `da apps list`)")


def list_apps(conn: Conn) -> list[App]:
    rows = conn.execute(
        "SELECT name, scopes, rate_limit, created_at, revoked_at FROM collector_apps ORDER BY name"
    ).fetchall()
    return [
        App(str(n), tuple(cast(list[str], s)), cast(float | None, r), cast(datetime, c), v)
        for n, s, r, c, v in rows
        if v is None or isinstance(v, datetime)
    ]


async def active_by_hash(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> dict[bytes, App]:
    cur = await conn.execute(
        "SELECT key_hash, name, scopes, rate_limit FROM collector_apps WHERE revoked_at IS NULL "
        "UNION ALL SELECT previous_key_hash, name, scopes, rate_limit FROM collector_apps "
        "WHERE revoked_at IS NULL AND previous_key_expires_at > now()"
    )
    rows = await cur.fetchall()
    return {
        cast(bytes, h): App(str(n), tuple(cast(list[str], s)), cast(float | None, r))
        for h, n, s, r in rows
    }
