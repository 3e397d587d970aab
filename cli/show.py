"""``da fulfillments``: the live state of proctoring fulfillments, as a dashboard shows it."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer

from cli.output import Column, Format, OutputOption, Report, Table, render
from common import db
from common.settings import Settings
from dep import fulfillment_state


def _fmt_duration(seconds: object) -> str:
    s = int(float(str(seconds)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


STATES = ("ENTERING", "WAITING", "LAUNCHING", "TESTING", "DONE")
_BY_STATE = [Column("state", "state"), Column("fulfillments", "fulfillments")]
_TIME_IN_STATE = [
    Column("state", "state"),
    Column("left", "left"),
    Column("avg_s", "avg (h:m:s)", _fmt_duration),
    Column("max_s", "max (h:m:s)", _fmt_duration),
]
_WAITING = [
    Column("fulfillment_id", "fulfillment"),
    Column("waiting_since", "waiting since (UTC)"),
    Column("waited_s", "waited (h:m:s)", _fmt_duration),
]


def report(settings: Settings) -> Report:
    with db.connect(settings, autocommit=True, dep=fulfillment_state.SPEC.name) as conn:
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
    waited = [
        {"fulfillment_id": fid, "waiting_since": since, "waited_s": (now - since).total_seconds()}
        for fid, since in waiting
        if now is not None and isinstance(since, datetime)
    ]
    return Report(
        [
            Table(
                "by_state",
                _BY_STATE,
                [{"state": s, "fulfillments": counts.get(s, 0)} for s in STATES],
            ),
            Table(
                "time_in_state",
                _TIME_IN_STATE,
                [
                    {"state": state, "left": n, "avg_s": mean, "max_s": top}
                    for state, n, mean, top in sorted(avg, key=lambda r: str(r[0]))
                ],
                title="time in the states left:",
            ),
            Table("waiting_longest", _WAITING, waited, title="waiting longest:"),
        ],
        {
            "events_stored": ("events stored", events[0] if events else 0),
            "event_time_now": ("event time now", now),
        },
    )


def fulfillments(
    watch: Annotated[float, typer.Option(help="Refresh every second for this many seconds.")] = 0,
    output: OutputOption = Format.TABLE,
) -> None:
    """Where every fulfillment stands, and how long they spent in each state."""
    from cli.main import load_settings

    settings = load_settings()
    end = time.monotonic() + watch
    while True:
        text = render(report(settings), output)
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
