"""/workflow: OUSs per state as columns, the one waiting longest in each, and the commands refused
in the last hour (the tables of the ``ous-lifecycle`` state service)."""

from __future__ import annotations

from datetime import timedelta

from common.views import workflow as views
from web.html import clock_time, duration, empty, esc, ms, table
from web.pages.base import Context, Page

SHOWN = 20
STATE_SERVICE = "ous-lifecycle"


def build(ctx: Context) -> Page:
    conn = ctx.dbs.of(STATE_SERVICE)
    event_clock = ctx.settings.clock == "event"
    now = ctx.wall_now
    if event_clock:  # the newest command's time, as the board's waits are in event time
        row = conn.execute("SELECT max(at) FROM ous_commands").fetchone()
        now = row[0] if row and row[0] is not None else now
    columns = views.board(conn, ctx.ous_states)
    total, refused = views.rejections(conn, now - timedelta(hours=1), SHOWN)
    cards = []
    for c in columns:
        longest = ""
        if c.longest_since is not None:
            waited = (now - c.longest_since).total_seconds()
            longest = (
                f'<div class="longest">{esc(c.longest_uid)}<br>'
                f'<span class="timer" data-since-ms="{ms(c.longest_since)}">'
                f"{esc(duration(waited))}</span></div>"
            )
        cards.append(
            f'<div class="column"><div class="label">{esc(c.state)}</div>'
            f'<div class="value">{c.count:,}</div>{longest}</div>'
        )
    rows = [
        [
            esc(clock_time(r.at)),
            esc(r.ous_uid),
            esc(r.operation),
            esc(r.value),
            f'<span class="{"warn" if r.applied else "crit"}">{esc(r.reason)}</span>',
            "applied, flagged" if r.applied else "refused",
        ]
        for r in refused
    ]
    sections = {
        "columns": f'<div class="columns">{"".join(cards)}</div>',
        "rejections": (
            f"<p>{total:,} in the last hour (to {esc(clock_time(now))})"
            + (f", the newest {len(rows)}:" if rows else ".")
            + "</p>"
            + (table(["at", "OUS", "operation", "value", "reason", ""], rows) if rows else "")
        )
        if total
        else empty("No command was refused in the last hour."),
    }
    return Page("OUS workflow", sections, {}, ms(now) or 0, not event_clock)
