"""``da fulfillments``: the live state of proctoring fulfillments, as a dashboard shows it."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from cli.output import Column, Format, OutputOption, Report, Table, render
from common import db
from common.settings import Settings
from common.views.fulfillments import STATES, summary
from dep import fulfillment_state


def _fmt_duration(seconds: object) -> str:
    s = int(float(str(seconds)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


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
        found = summary(conn, longest=5)
    now = found.event_time_now
    waited = [
        {
            "fulfillment_id": w.fulfillment_id,
            "waiting_since": w.since,
            "waited_s": (now - w.since).total_seconds(),
        }
        for w in found.waiting
        if now is not None
    ]
    return Report(
        [
            Table(
                "by_state",
                _BY_STATE,
                [{"state": s, "fulfillments": found.counts.get(s, 0)} for s in STATES],
            ),
            Table(
                "time_in_state",
                _TIME_IN_STATE,
                [
                    {"state": x.state, "left": x.left, "avg_s": x.avg_s, "max_s": x.max_s}
                    for x in found.left
                ],
                title="time in the states left:",
            ),
            Table("waiting_longest", _WAITING, waited, title="waiting longest:"),
        ],
        {
            "events_stored": ("events stored", found.events),
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
