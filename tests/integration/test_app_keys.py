"""Application keys: a rotation keeps the old key valid for its grace period only, and a revoked
name can be registered again (with a new key)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from collector import apps
from common import db
from common.settings import Settings


def _active(settings: Settings) -> dict[bytes, str]:
    async def read() -> dict[bytes, str]:
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, options=f"-c search_path={settings.database_schema}"
        ) as conn:
            return {h: app.name for h, app in (await apps.active_by_hash(conn)).items()}

    return asyncio.run(read())


def test_rotation_grace_and_reuse_of_a_revoked_name(settings: Settings) -> None:
    db.migrate(settings, apps.MIGRATIONS)
    with db.connect(settings, autocommit=True) as conn:
        first = apps.add(conn, "shop", ("ingest",), None)
        second, until = apps.rotate(conn, "shop", grace_s=600)
        assert until.timestamp() > time.time() + 500
    assert _active(settings) == {apps.key_hash(first): "shop", apps.key_hash(second): "shop"}

    with db.connect(settings, autocommit=True) as conn:
        third, _ = apps.rotate(conn, "shop", grace_s=0)  # the old key is refused at once
    assert _active(settings) == {apps.key_hash(third): "shop"}

    with db.connect(settings, autocommit=True) as conn:
        with pytest.raises(apps.AppError, match="exists already"):
            apps.add(conn, "shop", ("ingest",), None)
        apps.revoke(conn, "shop")
        with pytest.raises(apps.AppError, match="no active application"):
            apps.rotate(conn, "shop", grace_s=60)
    assert _active(settings) == {}

    with db.connect(settings, autocommit=True) as conn:
        again = apps.add(conn, "shop", ("ingest", "read"), 50.0)
        listed = apps.list_apps(conn)
    assert _active(settings) == {apps.key_hash(again): "shop"}
    assert [(a.name, a.scopes, a.rate_limit, a.revoked_at) for a in listed] == [
        ("shop", ("ingest", "read"), 50.0, None)
    ]
