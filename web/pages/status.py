"""/status: ``da status`` as a page: per stage its verdict, processed, outstanding, rate, ETA, dead
letters by reason and parked events, its lag over the last two minutes, the command to run next
for anything red, and the last dead letters of every stage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from common.status_model import EXIT
from web.html import clock_time, duration, empty, esc, number, table
from web.pages.base import Context, Page
from web.pages.fulfillments import banner
from web.status_feed import StatusView

_LEVEL = {0: "ok", 1: "warn", 2: "crit", 3: "crit"}


def build(ctx: Context) -> Page:
    view = ctx.status
    sections = {
        "banner": _problem(view),
        "load": initial_load(view.initial_load),
        "stages": _stages(view.rows),
        "errors": _errors(view),
        "clock": (
            f"sampled {esc(clock_time(datetime.fromtimestamp(view.sampled_at, UTC)))}, every "
            "second; dead letters, parked events and time behind every 15 s"
        ),
    }
    charts = {
        f"lag-{stage}": {"x": [round(t, 1) for t, _ in points], "y": [n for _, n in points]}
        for stage, points in view.lag.items()
    }
    return Page("Pipeline status", sections, charts, int(view.sampled_at * 1000), False)


def _problem(view: StatusView) -> str:
    # The same staleness rule as the board: the status page must not look live when it is not.
    text = banner(StatusView(view.sampled_at, [], {}, {}, [], view.problem))
    return text


def initial_load(progress: dict[str, Any] | None) -> str:
    """The latest initial load's progress, as ``da status -o json`` reports it (``summary``,
    ``percent``, ``eta_s``, ``done``, and per stage ``stage``, ``done``, ``partitions_done``,
    ``partitions``); nothing when there was none."""
    if not progress:
        return ""
    pct = float(progress.get("percent", 0))
    chips = "".join(
        f'<span class="chip {"v-ok" if s.get("done") else ""}">{esc(s.get("stage"))} '
        + ("done" if s.get("done") else f"{s.get('partitions_done', 0)}/{s.get('partitions', 0)}")
        + "</span>"
        for s in progress.get("stages", [])
    )
    summary = progress.get("summary") or f"initial load {pct:.0f} %"
    return (
        f'<div class="load"><strong>{esc(summary)}</strong>'
        f'<div class="progress"><span style="width:{pct:.1f}%"></span></div>{chips}</div>'
    )


def _stages(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return empty("No status sample yet.")
    out = []
    for r in rows:
        level = _LEVEL[EXIT[r["verdict"]]]
        letters = r["dead_letters"]
        dlq = ", ".join(f"{esc(k)} {v:,}" for k, v in sorted(letters.items())) or "0"
        nxt = r["next"] if level != "ok" else None
        why = esc(r["why"])
        verdict = f'<span class="verdict v-{level}" title="{why}">{esc(r["verdict"])}</span>'
        out.append(
            [
                f"<strong>{esc(r['stage'])}</strong>",
                verdict,
                str(len(r["instances"])),
                f"{r['processed']:,}",
                f"{r['outstanding']:,}",
                esc(duration(r["behind_s"])) if r["behind_s"] else "-",
                esc(number(r["rate_per_s"])),
                esc(duration(r["eta_s"])) if r["eta_s"] is not None else "-",
                f'<span class="{"crit" if letters else ""}">{dlq}</span>',
                esc(number(r["parked"])),
                f'<div class="spark" id="chart-lag-{esc(r["stage"])}"></div>',
                f"{esc(r['why'])}" + (f"<br>next: <code>{esc(nxt)}</code>" if nxt else ""),
            ]
        )
    head = [
        "stage",
        "verdict",
        "inst",
        "processed",
        "outstanding",
        "behind",
        "rate/s",
        "ETA",
        "dead letters",
        "parked",
        "lag, 2 min",
        "why / next",
    ]
    return table(head, out, "stages")


def _errors(view: StatusView) -> str:
    if not view.errors:
        return empty("No dead letters.")
    rows = [
        [
            esc(clock_time(e.failed_at)),
            esc(e.stage),
            f'<span class="crit">{esc(e.reason)}</span>',
            esc(e.field),
            esc(e.detail),
            esc(e.source),
        ]
        for e in view.errors
    ]
    note = (
        "<p>next: <code>da dlq show STAGE --reason REASON</code>, then after a fix "
        "<code>da dlq replay STAGE --reason REASON</code></p>"
    )
    return table(["failed at", "stage", "reason", "field", "detail", "from"], rows) + note
