"""``da workflow board`` (OUS counts per state and the longest waiting OUS of each, like the
observatory's dashboard) and ``da workflow simulate``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
import typer

from cli.sample.workflow import generate
from common import db
from common.kafka import check_kafka, make_producer
from common.settings import Settings
from common.topics import Topics
from common.views import workflow as views
from dep import ous_lifecycle

# States an OUS waits in for an actor; a simulation is over when none of its OUSs is in one.
BUSY = ("FullyObserved", "ReadyForProcessing", "Processing")


def _settings() -> Settings:
    from cli.main import load_settings

    return load_settings()


def render(settings: Settings, states: list[str], now: datetime) -> str:
    with db.connect(settings, autocommit=True, dep=ous_lifecycle.SPEC.name) as conn:
        columns = views.board(conn, states)
    lines = [f"{'state':<20} {'OUSs':>5}  longest waiting"]
    for c in columns:
        since = c.longest_since
        age = 0 if since is None else max(0, int((now - since).total_seconds()))
        wait = "" if since is None else f"{c.longest_uid} ({age}s)"
        lines.append(f"{c.state:<20} {c.count:>5}  {wait}")
    return "\n".join(lines)


def board() -> None:
    """OUS counts per state, and the OUS waiting longest in each state."""
    from dep.lifecycle import Lifecycle
    from dep.ous_lifecycle import LIFECYCLE

    typer.echo(render(_settings(), list(Lifecycle.load(LIFECYCLE).states), datetime.now(UTC)))


def simulate(
    ous: Annotated[int, typer.Option("--ous", min=1, help="OUSs to bring in.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed of the commands.")] = 1,
    wait: Annotated[float, typer.Option(help="Seconds to let the actors run at most.")] = 120.0,
) -> None:
    """Bring OUSs in as the QA step would, let the actors run, then show the board."""
    settings = _settings()
    check_kafka(settings)
    project = f"S{seed}"
    # The QA commands are stamped in the past, far enough back that the simulated runs (up to
    # an hour each, stamped at their end) are over too: the board's waiting times are real ages.
    start = datetime.now(UTC) - timedelta(seconds=ous * 4 * 90 + 2 * 3600)
    prefix = f"sim{seed}-{time.time_ns()}"
    records = generate(seed, ous, None, clean=True, start=start, prefix=prefix, project=project)
    producer = make_producer(settings)
    topic = Topics(settings.namespace).ingest
    for r in records:
        producer.produce(
            topic,
            msgspec.json.encode(r["value"]),
            r["key"].encode(),
            headers=[("da-format", b"xtss")],
        )
    if producer.flush(settings.io_timeout_s):
        typer.echo("the broker did not take every command", err=True)
        raise typer.Exit(1)
    typer.echo(f"sent {len(records)} commands for {ous} OUSs (uid://{project}/...)")
    deadline = time.monotonic() + wait
    busy = -1
    while time.monotonic() < deadline:
        with db.connect(settings, autocommit=True, dep=ous_lifecycle.SPEC.name) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE state = ANY(%s) OR state IS NULL), count(*) "
                "FROM ous_status WHERE ous_uid LIKE %s",
                (list(BUSY), f"uid://{project}/%"),
            ).fetchone()
        busy, seen = (int(str(row[0])), int(str(row[1]))) if row else (0, 0)
        if seen == ous and busy == 0:
            break
        time.sleep(1)
    if busy:
        typer.echo(f"{busy} OUS(s) still waiting for an actor after {wait:g}s", err=True)
    board()


def register(workflow_app: typer.Typer) -> None:
    workflow_app.command("board")(board)
    workflow_app.command("simulate")(simulate)
