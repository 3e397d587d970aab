"""``da replay DEP``: rebuild a DEP's tables, or re-read its input from a point in time.

A DEP's position is its stored offsets (``da_offsets``), so replay is a change of those rows,
made while the DEP is stopped: ``--from TIME`` moves every input partition back to the first
offset at or after TIME and keeps the tables (the handlers are idempotent, so events already
applied change nothing and events a bug had dropped are applied now); ``--rebuild`` empties the
DEP's tables, its outbox rows and parked events, and forgets its offsets, so it rebuilds
everything from the beginning of its topics
(as far as their retention reaches).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from confluent_kafka import ConsumerGroupState, KafkaException, TopicPartition
from psycopg import sql

from common import db
from common.kafka import check_kafka, make_admin, make_consumer
from common.names import dep_stage
from common.settings import Settings
from common.topics import Topics
from dep import registry
from dep.spec import DepSpec


def running_instances(settings: Settings, group: str) -> str | None:
    """Why the group looks active (so its offsets must not be touched), or None when idle."""
    admin = make_admin(settings)  # held until the answer is in: a collected client cancels it
    try:
        description = admin.describe_consumer_groups([group])[group].result(
            timeout=settings.io_timeout_s
        )
    except (TimeoutError, KafkaException) as exc:
        return f"its group {group} cannot be described ({str(exc) or 'timed out'})"
    if description.members:
        return f"{len(description.members)} running instance(s) in group {group}"
    if description.state not in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD):
        return f"group {group} is {description.state.name.lower()}"
    return None


def offsets_at(settings: Settings, spec: DepSpec, at: datetime) -> list[TopicPartition]:
    """The first offset at or after ``at`` in each input partition (the end where none is)."""
    topics = spec.topics(Topics(settings.namespace))
    consumer = make_consumer(settings, settings.group_id("replay-lookup"))
    try:
        wanted = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=settings.io_timeout_s).topics[topic]
            ms = int(at.timestamp() * 1000)
            wanted += [TopicPartition(topic, p, ms) for p in meta.partitions]
        found = consumer.offsets_for_times(wanted, timeout=settings.io_timeout_s)
        result = []
        for tp in found:
            if tp.offset < 0:  # nothing at or after the time: start at the end
                _, high = consumer.get_watermark_offsets(tp, timeout=settings.io_timeout_s)
                tp = TopicPartition(tp.topic, tp.partition, high)
            result.append(tp)
        return result
    finally:
        consumer.close()


def replay(
    name: Annotated[str, typer.Argument(help="The DEP (see `da dep list`).")],
    since: Annotated[
        str | None, typer.Option("--from", help="ISO 8601 time to re-read from.")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Empty the tables, start over.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Re-read a DEP's input from a time, or rebuild its tables from scratch. The DEP must be
    stopped (every instance)."""
    from cli.main import load_settings

    if (since is None) == (not rebuild):
        raise typer.BadParameter("give exactly one of --from TIME and --rebuild")
    try:
        spec = registry.get(name)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None
    settings = load_settings()
    check_kafka(settings)
    group = settings.group_id(dep_stage(name))
    if busy := running_instances(settings, group):
        typer.echo(
            f"da: {name}: {busy}; stop every instance first (a running DEP would "
            "overwrite the new offsets)",
            err=True,
        )
        raise typer.Exit(2)
    db.migrate(settings, registry.all_migrations())
    if rebuild:
        what = f"empty {', '.join(spec.tables)} and rebuild {name} from the beginning"
        offsets: list[TopicPartition] = []
    else:
        try:
            at = datetime.fromisoformat(since or "")
        except ValueError:
            raise typer.BadParameter(f"{since!r} is not an ISO 8601 time") from None
        at = at if at.tzinfo else at.astimezone()
        offsets = offsets_at(settings, spec, at)
        what = f"re-read {name}'s input from {at.isoformat()}"
    if not yes and not typer.confirm(f"{what}?"):
        raise typer.Exit(1)
    with db.connect(settings, dep=name) as conn, conn.transaction():
        if rebuild:
            # Outbox rows and parked events are state too: a rebuild recreates what is needed.
            conn.execute("DELETE FROM da_outbox WHERE owner = %s", (name,))
            conn.execute("DELETE FROM da_parked WHERE owner = %s", (name,))
            conn.execute(
                sql.SQL("TRUNCATE {}").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in spec.tables)
                )
            )
        conn.execute("DELETE FROM da_offsets WHERE consumer_group = %s", (group,))
        for tp in offsets:
            conn.execute(
                "INSERT INTO da_offsets (consumer_group, topic, partition, next_offset) "
                "VALUES (%s, %s, %s, %s)",
                (group, tp.topic, tp.partition, tp.offset),
            )
    typer.echo(f"done: {what}; start it with `da dep run {name}`")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
