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
    try:
        conn.execute(
            "INSERT INTO collector_apps (name, key_hash, scopes, rate_limit) "
            "VALUES (%s, %s, %s, %s)",
            (name, key_hash(key), list(scopes), rate_limit),
        )
    except psycopg.errors.UniqueViolation:
        raise AppError(f"an application named {name!r} exists already") from None
    return key


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
        "SELECT key_hash, name, scopes, rate_limit FROM collector_apps WHERE revoked_at IS NULL"
    )
    rows = await cur.fetchall()
    return {
        cast(bytes, h): App(str(n), tuple(cast(list[str], s)), cast(float | None, r))
        for h, n, s, r in rows
    }
