"""``da parked``: what waits in the parking table, per DEP (count, oldest, what it waits for)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from common import db, parking


def parked() -> None:
    """Events parked by DEPs until what they need arrives (e.g. content metadata)."""
    from cli.main import load_settings

    settings = load_settings()
    with db.connect(settings, autocommit=True) as conn:
        rows = parking.summary(conn)
    if not rows:
        typer.echo("parked: none")
        return
    now = datetime.now(UTC)
    for r in rows:
        age = int((now - r.oldest).total_seconds())
        typer.echo(
            f"{r.owner}: {r.count} parked, waiting for {r.waiting_for} thing(s); "
            f"oldest parked {r.oldest:%Y-%m-%d %H:%M:%S} UTC ({age}s ago)"
        )


def register(app: typer.Typer) -> None:
    app.command("parked")(parked)
