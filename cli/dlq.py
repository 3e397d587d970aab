"""``da dlq list | show | replay``: look into the dead-letter topics and, after a fix, send their
events back to where they failed.

A dead letter keeps the original key, value and headers; its ``da-*`` headers say which stage
rejected it, why, and from which topic, partition and offset it came. Replay produces the
original message to that source topic again (marked with ``da-replayed-from``), so it flows
through the fixed stage like any new event; the stages downstream are idempotent by event id.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Annotated, Any

import typer

from cli.output import Column, Format, OutputOption, Report, Table, render
from common import deadletter as dl
from common import stages as registry
from common.dlq_read import Letter, read_letters
from common.kafka import check_kafka, make_producer
from common.settings import Settings
from common.topics import Topics

dlq_app = typer.Typer(help="Dead-letter topics: list, show, replay.", no_args_is_help=True)


def stages() -> list[str]:
    """Every stage has a dead-letter topic (the registry's order)."""
    return [s.name for s in registry.STAGES]


def matches(
    letter: Letter, reason: str | None, since: datetime | None, until: datetime | None
) -> bool:
    if reason is not None and letter.get(dl.H_REASON) != reason:
        return False
    at = letter.failed_at()
    if since is not None and (at is None or at < since):
        return False
    return not (until is not None and (at is None or at > until))


def _settings() -> Settings:
    from cli.main import load_settings

    settings = load_settings()
    check_kafka(settings)
    return settings


def _known(stage: str) -> None:
    if stage not in stages():
        raise typer.BadParameter(
            f"no stage {stage!r}; one of: {', '.join(stages())}", param_hint="STAGE"
        )


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=name) from None
    return at if at.tzinfo else at.astimezone()


Stage = Annotated[
    str, typer.Argument(help="gep, demux, collector or a DEP's name (see `da dlq list`).")
]


def _stage(name: str) -> str:
    """The registry's name of a stage given by either of its names; unknown: a usage error."""
    try:
        return registry.get(name).name
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None


Reason = Annotated[str | None, typer.Option(help="Only dead letters with this reason.")]
Since = Annotated[str | None, typer.Option(help="Only those that failed at or after (ISO 8601).")]
Until = Annotated[str | None, typer.Option(help="Only those that failed at or before.")]


_LIST_COLUMNS = [
    Column("stage", "stage"),
    Column("count", "dead letters"),
    Column("first_failed_at", "first (UTC)"),
    Column("last_failed_at", "last (UTC)"),
    Column("reasons", "reasons (count)"),
    Column("topic", "topic", in_table=False),
]


@dlq_app.command("list")
def list_(output: OutputOption = Format.TABLE) -> None:
    """Every stage's dead-letter topic: how many, why, and when."""
    settings = _settings()
    rows = []
    for stage in stages():
        letters = list(read_letters(settings, stage))
        times = [t for t in (x.failed_at() for x in letters) if t is not None]
        reasons = Counter(x.get(dl.H_REASON) or "-" for x in letters).most_common()
        rows.append(
            {
                "stage": stage,
                "topic": Topics(settings.namespace).dead_letter(stage),
                "count": len(letters),
                "first_failed_at": min(times) if times else None,
                "last_failed_at": max(times) if times else None,
                "reasons": dict(reasons),
            }
        )
    typer.echo(render(Report([Table("stages", _LIST_COLUMNS, rows)]), output))


def _short(text: object, width: int = 60) -> str:
    value = str(text)
    return value if len(value) <= width else value[: width - 1] + "…"


_SHOW_COLUMNS = [
    Column("partition", "partition"),
    Column("offset", "offset"),
    Column("failed_at", "failed (UTC)"),
    Column("reason", "reason"),
    Column("field", "field"),
    Column("detail", "detail", _short),
    Column("source_topic", "from topic"),
    Column("source_partition", "partition", in_table=False),
    Column("source_offset", "offset", in_table=False),
    Column("key", "key", in_table=False),
    Column("value", "value", in_table=False),
]


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _row(x: Letter) -> dict[str, Any]:
    return {
        "partition": x.partition,
        "offset": x.offset,
        "failed_at": x.failed_at(),
        "reason": x.get(dl.H_REASON),
        "field": x.get(dl.H_FIELD),
        "detail": x.get(dl.H_DETAIL),
        "source_topic": x.get(dl.H_TOPIC) or None,
        "source_partition": _int(x.get(dl.H_PARTITION)),
        "source_offset": _int(x.get(dl.H_OFFSET)),
        "key": x.key.decode("utf-8", errors="replace") if x.key is not None else None,
        "value": x.value.decode("utf-8", errors="replace") if x.value is not None else None,
    }


@dlq_app.command("show")
def show(
    stage: Stage,
    reason: Reason = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 20,
    output: OutputOption = Format.TABLE,
) -> None:
    """The dead letters of a stage, with where they came from and why (-o json: whole values)."""
    stage = _stage(stage)
    settings = _settings()
    t0, t1 = _time(since, "--since"), _time(until, "--until")
    rows = []
    for x in read_letters(settings, stage):
        if matches(x, reason, t0, t1):
            rows.append(_row(x))
            if len(rows) >= limit:
                break
    typer.echo(render(Report([Table("letters", _SHOW_COLUMNS, rows)]), output))


@dlq_app.command("replay")
def replay(
    stage: Stage,
    reason: Reason = None,
    since: Since = None,
    until: Until = None,
    rate: Annotated[float, typer.Option(help="At most this many events/s; 0: no limit.")] = 100.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, send nothing.")] = False,
) -> None:
    """Send matching dead letters back to the topic they failed on, after a fix."""
    stage = _stage(stage)
    settings = _settings()
    t0, t1 = _time(since, "--since"), _time(until, "--until")
    producer = None if dry_run else make_producer(settings)
    sent = skipped = truncated = 0
    started = time.monotonic()
    for x in read_letters(settings, stage):
        source = x.get(dl.H_TOPIC)
        if not matches(x, reason, t0, t1) or not source:
            skipped += 1
            continue
        if x.get(dl.H_TRUNCATED):  # only the head of the original is kept: nothing to resend
            truncated += 1
            continue
        if producer is not None:
            if rate > 0:  # pace: the n-th event no earlier than n/rate seconds after the start
                time.sleep(max(0.0, started + sent / rate - time.monotonic()))
            headers: list[tuple[str, Any]] = [(k, v) for k, v in x.headers if k not in dl.METADATA]
            headers.append(("da-replayed-from", f"{stage}:{x.partition}:{x.offset}".encode()))
            producer.produce(source, x.value, x.key, headers=headers)
            producer.poll(0)
        sent += 1
    if producer is not None and producer.flush(settings.io_timeout_s):
        typer.echo("da: some replayed events were not acknowledged by the broker", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{'would replay' if dry_run else 'replayed'} {sent}, skipped {skipped}"
        + (
            f", {truncated} truncated (cannot be replayed: only their head was kept)"
            if truncated
            else ""
        )
    )


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")
