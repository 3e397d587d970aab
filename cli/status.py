"""``da status``: one row per consuming stage, its verdict, and what to do about a red one.

The verdict comes from samples this command takes (two, ``--interval`` seconds apart; one per
refresh under ``--watch``) and from the samples earlier runs kept in
``<state dir>/status/history-<namespace>.json`` (the last two minutes), which give the rate over
the last minute. Exit status: 0 every stage OK, 1 a warning (CATCHING_UP, SLOW, REWIND),
2 critical (STALLED, STOPPED), 3 unknown (Kafka or PostgreSQL could not be read).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.load_status import load_json
from cli.output import Column, Format, OutputOption, Report, Table
from cli.output import render as render_output
from common.settings import Settings
from common.stack_paths import state_dir
from common.status_model import (
    EXIT,
    Partition,
    StageSample,
    overall_exit,
)
from common.status_read import Reader
from common.status_rows import KEEP_S, minute_ago, rows


def _history_file(settings: Settings) -> Path:
    return state_dir() / "status" / f"history-{settings.namespace or 'default'}.json"


def load_history(path: Path) -> list[tuple[float, dict[str, StageSample]]]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for entry in raw:
        samples = {
            name: StageSample(name, tuple(Partition(*p) for p in parts), ())
            for name, parts in entry["stages"].items()
        }
        out.append((float(entry["t"]), samples))
    return out


def save_history(path: Path, history: list[tuple[float, dict[str, StageSample]]]) -> None:
    now = time.time()
    kept = [(t, s) for t, s in history if now - t <= KEEP_S]
    entries = [
        {
            "t": t,
            "stages": {n: [list(asdict(p).values()) for p in x.partitions] for n, x in s.items()},
        }
        for t, s in kept
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries))
    tmp.replace(path)


def _fields(p: Partition) -> list[object]:
    return list(asdict(p).values())


def report(reader: Reader, interval_s: float, history_path: Path) -> dict[str, Any]:
    history = load_history(history_path)
    t0 = time.time()
    before = reader.sample()
    time.sleep(interval_s)
    t1 = time.time()
    now = reader.sample()
    history += [(t0, before), (t1, now)]
    save_history(history_path, history)
    past = minute_ago(history[:-2], t1)
    found = rows((t0, before), (t1, now), past, history, reader.details)
    return {
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stages": found,
        "initial_load": load_json(reader, now),
        "exit": overall_exit([r["verdict"] for r in found]),
    }


def _num(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:,.0f}{unit}" if x >= 10 or x == 0 else f"{x:.1f}{unit}"


def _ago(iso: str | None) -> str:
    if iso is None:
        return "-"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    return f"{max(0.0, seconds):,.0f}s ago"


def render(result: dict[str, Any], partitions: bool) -> str:
    head = f"{'STAGE':<20} {'VERDICT':<12} {'INST':>4} {'PROCESSED':>11} {'OUTSTANDING':>11} "
    head += f"{'BEHIND':>8} {'RATE/s':>8} {'ETA':>7} {'DLQ':>6} {'PARKED':>6}  LAST COMMIT"
    lines = [head]
    if result.get("initial_load"):
        lines.insert(0, result["initial_load"]["summary"])
    for r in result["stages"]:
        dlq = sum(r["dead_letters"].values())
        lines.append(
            f"{r['stage']:<20} {r['verdict']:<12} {len(r['instances']):>4} "
            f"{r['processed']:>11,} {r['outstanding']:>11,} {_num(r['behind_s'], 's'):>8} "
            f"{_num(r['rate_per_s']):>8} {_num(r['eta_s'], 's'):>7} {dlq:>6} "
            f"{_num(r['parked']):>6}  {_ago(r['last_commit'])}"
        )
    for r in result["stages"]:
        shown = r["partitions"] if partitions else [p for p in r["partitions"] if p["lag"]][:3]
        notes = []
        if r["verdict"] != "OK":
            notes.append(f"  {r['verdict']}: {r['why']}")
        if r["dead_letters"]:
            notes.append(
                "  dead letters: " + ", ".join(f"{k} {v}" for k, v in r["dead_letters"].items())
            )
        for p in shown:
            notes.append(
                f"  {p['topic']}[{p['partition']}] lag {p['lag']:,} (end {p['end']:,}, "
                f"committed {p['committed']}, stored {p['stored']}) owner {p['owner'] or '-'}"
            )
        if r["next"] and EXIT[r["verdict"]] >= 1:
            notes.append(f"  next: {r['next']}")
        if notes:
            lines += ["", r["stage"], *notes]
    return "\n".join(lines)


_CSV_COLUMNS = [
    Column(key, key)
    for key in (
        "stage",
        "verdict",
        "instances",
        "processed",
        "outstanding",
        "behind_s",
        "rate_per_s",
        "eta_s",
        "dead_letters",
        "parked",
        "last_commit",
        "next",
    )
]


def csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per stage (instances and dead letters as counts) for ``-o csv``."""
    return [
        {
            **{c.key: r.get(c.key) for c in _CSV_COLUMNS},
            "instances": len(r["instances"]),
            "dead_letters": sum(r["dead_letters"].values()),
        }
        for r in result["stages"]
    ]


def status(
    # `--json` came before `-o json`; kept, unlisted, for the scripts that use it.
    as_json: Annotated[bool, typer.Option("--json", hidden=True)] = False,
    watch: Annotated[float, typer.Option(help="Refresh every N seconds; 0: once.")] = 0.0,
    partitions: Annotated[bool, typer.Option("--partitions", help="Every partition.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between the two samples.")] = 3.0,
    output: OutputOption = Format.TABLE,
) -> None:
    """Every consuming stage: instances, processed, outstanding, time behind, rate over the last
    minute, ETA, dead letters, parked events, last commit, and a verdict (OK, CATCHING_UP, SLOW,
    STALLED, STOPPED, REWIND, UNKNOWN) with the command to run next. Exit status 0 ok, 1 warning,
    2 critical, 3 unknown."""
    from cli.main import load_settings

    settings = load_settings()
    reader = Reader(settings)
    path = _history_file(settings)
    try:
        while True:
            result = report(reader, interval, path)
            if as_json or output is Format.JSON:
                typer.echo(json.dumps(result))
            elif output is Format.CSV:
                table = Table("stages", _CSV_COLUMNS, csv_rows(result))
                typer.echo(render_output(Report([table]), Format.CSV))
            else:
                if watch:
                    typer.echo("\x1b[2J\x1b[H", nl=False)
                typer.echo(f"da status at {result['checked_at']}\n{render(result, partitions)}")
            if not watch:
                break
            time.sleep(max(0.0, watch - interval))
    finally:
        reader.close()
    raise typer.Exit(result["exit"])


def register(app: typer.Typer) -> None:
    app.command("status")(status)
