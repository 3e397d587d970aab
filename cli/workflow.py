"""``da workflow``: the OUS workflow from the command line. The operations send a command to the
state service (``ous-lifecycle``) through the ingest topic and wait for its answer; ``get``,
``list``, ``history`` and ``board`` read its tables; ``simulate`` brings OUSs in as the QA step
would and lets the actors run."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from confluent_kafka import TopicPartition

from cli.output import Column, Format, OutputOption, Report, Table, render
from common import db
from common.kafka import check_kafka, ensure_topics, make_command_producer, make_consumer
from common.settings import Settings
from common.topics import Topics
from common.workflow import command_message
from dep import ous_lifecycle

workflow_app = typer.Typer(help="The OUS workflow: commands, state, history.", no_args_is_help=True)
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the answer.")]
OusUid = Annotated[str, typer.Argument(help="The OUS, e.g. uid://A003/X1/X1a.")]
REPLY_BUCKET = "cli"


def _settings() -> Settings:
    from cli.main import load_settings

    return load_settings()


def send(
    settings: Settings, ous_uid: str, operation: str, value: str | None, timeout: float
) -> dict[str, Any]:
    """Send one command and wait for its answer; raises TimeoutError when none comes."""
    topics = Topics(settings.namespace)
    reply_to = topics.reply_prefix + REPLY_BUCKET
    # A short fetch wait: with librdkafka's 500 ms, about one answer in fifty (written in a
    # transaction) was read only when the broker gave up waiting (p99 509 ms; 115 ms with 50).
    consumer = make_consumer(
        settings, f"{settings.group_id('cli')}.{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 50}
    )
    try:
        parts = consumer.list_topics(reply_to, timeout=settings.io_timeout_s).topics[reply_to]
        if parts.error is not None or not parts.partitions:
            # `da topics ensure` ran before the reply topic was named. Only then: an admin
            # client's round trips were half of a command's.
            ensure_topics(settings, [reply_to])
            parts = consumer.list_topics(reply_to, timeout=settings.io_timeout_s).topics[reply_to]
        # Listen from the current end before sending: the answer cannot come before we look.
        ends = [
            TopicPartition(
                reply_to,
                p,
                consumer.get_watermark_offsets(
                    TopicPartition(reply_to, p), timeout=settings.io_timeout_s
                )[1],
            )
            for p in parts.partitions
        ]
        consumer.assign(ends)
        command_id = f"cli-{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        msg = command_message(topics, command_id, ous_uid, operation, value, now, None, reply_to)
        producer = make_command_producer(settings)
        producer.produce(msg.topic, msg.value, msg.key, headers=list(msg.headers))
        if producer.flush(settings.io_timeout_s):
            raise TimeoutError("the broker did not take the command")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # poll, not consume(n, timeout): a batch consume waits out its timeout unless the
            # batch fills, and the answer is one record.
            m = consumer.poll(0.5)
            if m is not None and m.error() is None and m.key() == command_id.encode():
                answer: dict[str, Any] = json.loads(m.value() or b"{}")
                return answer
        raise TimeoutError(
            f"no answer to {operation} {ous_uid} within {timeout:g}s: is `da gep run`, "
            "`da demux run` and `da dep run ous-lifecycle` running?"
        )
    finally:
        consumer.close()


def _operation(operation: str, ous_uid: str, value: str | None, timeout: float) -> None:
    settings = _settings()
    check_kafka(settings)
    try:
        answer = send(settings, ous_uid, operation, value, timeout)
    except TimeoutError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    text = f"{answer['status']} {answer.get('reason', 'ok')}"
    typer.echo(f"{ous_uid}: {text}" + (f", now {answer['state']}" if "state" in answer else ""))
    if answer["status"] not in (200, 201):
        raise typer.Exit(2)


@workflow_app.command("set-state")
def set_state(ous_uid: OusUid, state: str, timeout: Timeout = 30.0) -> None:
    """Move an OUS to STATE (the first state must be an initial one)."""
    _operation("set-state", ous_uid, state, timeout)


@workflow_app.command("set-substate")
def set_substate(ous_uid: OusUid, recipe: str, timeout: Timeout = 30.0) -> None:
    """Set an OUS's substate (its pipeline recipe)."""
    _operation("set-substate", ous_uid, recipe, timeout)


@workflow_app.command("set-exec")
def set_exec(ous_uid: OusUid, executive: str, timeout: Timeout = 30.0) -> None:
    """Set the executive that processes an OUS."""
    _operation("set-exec", ous_uid, executive, timeout)


@workflow_app.command("clear-exec")
def clear_exec(ous_uid: OusUid, timeout: Timeout = 30.0) -> None:
    """Clear an OUS's executive."""
    _operation("clear-exec", ous_uid, None, timeout)


@workflow_app.command("set-flag")
def set_flag(
    ous_uid: OusUid,
    flag: Annotated[str, typer.Argument(help="NAME=VALUE")],
    timeout: Timeout = 30.0,
) -> None:
    """Set a flag on an OUS."""
    _operation("set-flag", ous_uid, flag, timeout)


@workflow_app.command("clear-flag")
def clear_flag(ous_uid: OusUid, name: str, timeout: Timeout = 30.0) -> None:
    """Clear a flag of an OUS."""
    _operation("clear-flag", ous_uid, name, timeout)


def _age(since: datetime | None, now: datetime) -> str:
    return "-" if since is None else f"{int((now - since).total_seconds())}s"


@workflow_app.command("get")
def get(ous_uid: OusUid) -> None:
    """Where one OUS stands."""
    with db.connect(_settings(), autocommit=True, dep=ous_lifecycle.SPEC.name) as conn:
        row = conn.execute(
            "SELECT state, state_since, substate, executive, flags, updated_at FROM ous_status "
            "WHERE ous_uid = %s",
            (ous_uid,),
        ).fetchone()
    if row is None:
        typer.echo(f"{ous_uid}: unknown", err=True)
        raise typer.Exit(1)
    state, since, substate, executive, flags, updated = row
    typer.echo(f"{ous_uid}: {state or '(no state yet)'} since {since or '-'}")
    typer.echo(
        f"  substate {substate or '-'}, executive {executive or '-'}, flags {json.dumps(flags)}"
    )
    typer.echo(f"  last command at {updated}")


@workflow_app.command("list")
def list_ous(
    state: Annotated[str | None, typer.Option(help="Only OUSs in this state.")] = None,
    substate: Annotated[
        str | None, typer.Option(help="Only substates matching this regex.")
    ] = None,
    executive: Annotated[str | None, typer.Option("--exec", help="Only this executive.")] = None,
    output: OutputOption = Format.TABLE,
) -> None:
    """OUSs by state, substate and executive, longest in their state first."""
    pattern = re.compile(substate) if substate else None
    with db.connect(_settings(), autocommit=True, dep=ous_lifecycle.SPEC.name) as conn:
        rows = conn.execute(
            "SELECT ous_uid, state, state_since, substate, executive FROM ous_status "
            "WHERE (%s::text IS NULL OR state = %s) AND (%s::text IS NULL OR executive = %s) "
            "ORDER BY state_since NULLS LAST, ous_uid",
            (state, state, executive, executive),
        ).fetchall()
    found = [
        {"ous_uid": uid, "state": st, "state_since": since, "substate": sub, "executive": exe}
        for uid, st, since, sub, exe in rows
        if pattern is None or (sub is not None and pattern.search(str(sub)))
    ]
    typer.echo(render(Report([Table("ous", _LIST_COLUMNS, found)]), output))


_LIST_COLUMNS = [
    Column("ous_uid", "OUS"),
    Column("state", "state"),
    Column("state_since", "since (UTC)"),
    Column("substate", "substate"),
    Column("executive", "executive"),
]


@workflow_app.command("history")
def history(ous_uid: OusUid) -> None:
    """Every state an OUS left, with the time spent there, and the commands refused."""
    with db.connect(_settings(), autocommit=True, dep=ous_lifecycle.SPEC.name) as conn:
        visits = conn.execute(
            "SELECT state, entered_at, left_at, seconds FROM ous_state_history "
            "WHERE ous_uid = %s ORDER BY entered_at, left_at",
            (ous_uid,),
        ).fetchall()
        refused = conn.execute(
            "SELECT at, operation, value, reason, detail FROM ous_rejections WHERE ous_uid = %s "
            "ORDER BY at",
            (ous_uid,),
        ).fetchall()
    for state, entered, left, seconds in visits:
        typer.echo(f"{state}\t{entered} -> {left}\t{seconds}s")
    for at, op, value, reason, detail in refused:
        typer.echo(f"refused {at}: {op} {value or ''} ({reason}: {detail})")


def register(app: typer.Typer) -> None:
    from cli import workflow_board

    workflow_board.register(workflow_app)
    app.add_typer(workflow_app, name="workflow")
