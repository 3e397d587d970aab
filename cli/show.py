"""``da fulfillments``: the live state of proctoring fulfillments, as a dashboard shows it."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer

from common import db
from common.settings import Settings


def _fmt_duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


def render(settings: Settings) -> str:
    with db.connect(settings, autocommit=True) as conn:
        as_of = conn.execute("SELECT max(created_at) FROM events").fetchone()
        events = conn.execute("SELECT count(*) FROM events").fetchone()
        by_state = conn.execute(
            "SELECT state, count(*) FROM current_fulfillments GROUP BY state"
        ).fetchall()
        avg = conn.execute(
            "SELECT state, count(*), avg(time_in_state), max(time_in_state) "
            "FROM fulfillments_history GROUP BY state"
        ).fetchall()
        waiting = conn.execute(
            "SELECT fulfillment_id, state_start_time FROM current_fulfillments "
            "WHERE state = 'WAITING' ORDER BY state_start_time, fulfillment_id LIMIT 5"
        ).fetchall()
    now = as_of[0] if as_of and isinstance(as_of[0], datetime) else None
    counts = {str(s): n for s, n in by_state}
    lines = [
        f"events stored: {events[0] if events else 0}"
        + (f"   (event time now: {now:%Y-%m-%d %H:%M:%S})" if now else "")
    ]
    lines.append(
        "fulfillments by state: "
        + "  ".join(
            f"{state} {counts.get(state, 0)}"
            for state in ("ENTERING", "WAITING", "LAUNCHING", "TESTING", "DONE")
        )
    )
    lines.append("time in state (left states):  state      n      avg        max")
    for state, n, mean, top in sorted(avg, key=lambda r: str(r[0])):
        lines.append(
            f"{'':30}{state!s:<10} {n!s:>5} {_fmt_duration(float(str(mean))):>10} "
            f"{_fmt_duration(float(str(top))):>10}"
        )
    if waiting and now:
        lines.append("waiting longest:")
        for fid, since in waiting:
            if isinstance(since, datetime):
                waited = _fmt_duration((now - since).total_seconds())
                lines.append(f"  fulfillment {fid}  waiting {waited}")
    return "\n".join(lines)


def fulfillments(
    watch: Annotated[float, typer.Option(help="Refresh every second for this many seconds.")] = 0,
) -> None:
    """Where every fulfillment stands, and how long they spent in each state."""
    from cli.main import load_settings

    settings = load_settings()
    end = time.monotonic() + watch
    while True:
        text = render(settings)
        if watch:
            typer.echo("\x1b[2J\x1b[H" + text if typer.get_text_stream("stdout").isatty() else text)
        else:
            typer.echo(text)
        if time.monotonic() >= end:
            return
        time.sleep(1)
        if not typer.get_text_stream("stdout").isatty():
            typer.echo("")


def register(app: typer.Typer) -> None:
    app.command("fulfillments")(fulfillments)
