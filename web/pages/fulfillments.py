"""/fulfillments, the wait-time board: how many test takers are in each state, who has waited
longest right now (timers ticking, a badge past the SLA), how current waits spread over minutes,
and how long the states left in the last hour took. A red banner says when the board is stale."""

from __future__ import annotations

import time
from datetime import datetime

from common.views.fulfillments import STATES, Waiting, recent, summary, wait_buckets
from web.html import clock_time, duration, empty, esc, ms, table
from web.pages.base import Context, Page
from web.status_feed import StatusView, red

STAGE = "fulfillment-state"
LONGEST = 20
TOP_MINUTES = 15
STALE_STATUS_S = 5.0  # no status sample this long: the board's freshness is unknown


def build(ctx: Context) -> Page:
    conn = ctx.dbs.of(STAGE)
    found = summary(conn, LONGEST, with_left=False)
    event_clock = ctx.settings.clock == "event"
    now = (found.event_time_now or ctx.wall_now) if event_clock else ctx.wall_now
    sla = ctx.settings.wait_sla_s
    hour = recent(conn, now)
    sections = {
        "banner": banner(ctx.status),
        "counts": _counts(found.counts),
        "waiting": _waiting(found.waiting, now, sla),
        "distribution": _distribution(wait_buckets(conn, now, TOP_MINUTES), sla),
        "quantiles": _quantiles(hour.quantiles),
        "clock": _clock(event_clock, now, found.events, sla),
    }
    start = int(hour.start.timestamp())
    chart = {
        "x": [start + hour.bin_s * (i + 1) for i in range(3600 // hour.bin_s)],
        "series": {s: hour.series[s] for s in STATES if s in hour.series},
    }
    return Page(
        "Wait-time board", sections, {"time_in_state": chart}, ms(now) or 0, not event_clock
    )


def banner(status: StatusView) -> str:
    """Red when the board cannot be trusted to be current: the DEP that keeps it stalled,
    stopped or behind (held for two samples, so one event arriving just before a sample does
    not flash it), or no status at all."""
    age = time.time() - status.sampled_at
    if status.problem or age > STALE_STATUS_S:
        why = status.problem or f"no status sample for {duration(age)}"
        return _red(
            f"Whether this board is current is unknown: {why}.", "da status  (or da stack status)"
        )
    row = status.row(STAGE)
    if row is None or not red(row["verdict"]):
        return ""
    if status.held.get(STAGE, 0) < 2 and row["verdict"] not in ("STOPPED", "UNKNOWN"):
        return ""
    behind = f"; {row['outstanding']:,} event(s) not applied yet"
    if row["behind_s"]:
        behind += f", {duration(row['behind_s'])} behind"
    text = f"This board is behind: {STAGE} is {row['verdict']} ({row['why']}){behind}."
    return _red(text, row["next"] or "da status")


def _red(text: str, command: str) -> str:
    return (
        f'<div class="banner" role="alert">{esc(text)}<br>next: <code>{esc(command)}</code></div>'
    )


def _counts(counts: dict[str, int]) -> str:
    cards = "".join(
        f'<div class="card state-{esc(s.lower())}"><div class="label">{esc(s)}</div>'
        f'<div class="value" data-state="{esc(s)}">{counts.get(s, 0):,}</div></div>'
        for s in [*STATES, *sorted(set(counts) - set(STATES))]
    )
    return f'<div class="cards">{cards}</div>'


def _waiting(waiting: list[Waiting], now: datetime, sla: float) -> str:
    rows = []
    for rank, w in enumerate(waiting, 1):
        fid, since = w.fulfillment_id, w.since
        waited = (now - since).total_seconds()
        late = waited >= sla
        badge = '<span class="badge sla">past SLA</span>' if late else ""
        rows.append(
            [
                str(rank),
                f'<span class="fid">{esc(fid)}</span>',
                esc(clock_time(since)),
                f'<span class="timer" data-since-ms="{ms(since)}" data-sla-ms="{int(sla * 1000)}">'
                f"{esc(duration(waited))}</span>",
                f'<span class="slot">{badge}</span>',
            ]
        )
    if not rows:
        return empty("Nobody is waiting.")
    head = ["#", "fulfillment", "waiting since", "waited", f"SLA {duration(sla)}"]
    return table(head, rows, "waiting")


def _distribution(counts: list[int], sla: float) -> str:
    top = max(counts) or 1
    bars = []
    for minute, n in enumerate(counts):
        label = f"{minute}-{minute + 1} min" if minute < TOP_MINUTES else f"> {TOP_MINUTES} min"
        late = " late" if minute * 60 >= sla else ""
        bars.append(
            f'<div class="bar{late}"><span class="what">{esc(label)}</span>'
            f'<span class="fill" style="width:{100 * n / top:.1f}%"></span>'
            f'<span class="n">{n:,}</span></div>'
        )
    return f'<div class="bars">{"".join(bars)}</div>'


def _quantiles(quantiles: dict[str, tuple[float, float, int, int]]) -> str:
    rows = [
        [esc(s), f"{q[3]:,}", duration(q[0]), duration(q[1]), duration(q[2])]
        for s in [*STATES, *sorted(set(quantiles) - set(STATES))]
        if (q := quantiles.get(s)) is not None
    ]
    if not rows:
        return empty("No state was left in the last hour.")
    return table(["state", "left", "p50", "p90", "max"], rows)


def _clock(event_clock: bool, now: datetime, events: int, sla: float) -> str:
    measured = (
        f"event time: waits are measured to the newest event, {clock_time(now)}"
        if event_clock
        else f"wall clock: waits are measured to now ({clock_time(now)} at the last update)"
    )
    return f"{esc(measured)} · {events:,} events stored · SLA {esc(duration(sla))} (DA_WAIT_SLA_S)"
