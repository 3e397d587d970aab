"""``da topics``, ``da db``, and the stage commands: ``da gep run``, ``da demux run``,
``da dep run NAME``, ``da dep list``."""

from __future__ import annotations

import typer

from cli.schemas import codec_for
from collector.apps import MIGRATIONS as COLLECTOR_MIGRATIONS
from common import db
from common.kafka import check_kafka, ensure_topics
from common.launch import run_store, run_transform
from common.runloop import Stopper
from common.settings import Settings, SettingsError
from common.topics import Topics
from demux.stage import STAGE as DEMUX
from demux.stage import Demux, sink_buckets
from dep import registry
from dep.collector_errors import COLLECTOR
from gep.stage import STAGE as GEP
from gep.stage import Gep

topics_app = typer.Typer(help="Create and list the pipeline's Kafka topics.", no_args_is_help=True)
db_app = typer.Typer(help="PostgreSQL state stores.", no_args_is_help=True)
gep_app = typer.Typer(help="GEP: validate and normalize raw events.", no_args_is_help=True)
demux_app = typer.Typer(
    help="demux: fan canonical events out into discrete events.", no_args_is_help=True
)
dep_app = typer.Typer(
    help="DEPs: discrete event processors keeping state stores.", no_args_is_help=True
)


def dep_stage(name: str) -> str:
    return f"dep.{name}"


def all_stages() -> list[str]:
    """Every stage name: each has a consumer group and a dead-letter topic."""
    return [GEP, DEMUX, COLLECTOR] + [dep_stage(n) for n in registry.DEPS]


def all_topics(settings: Settings) -> list[str]:
    topics = Topics(settings.namespace)
    stages = all_stages()
    buckets = sink_buckets()
    for spec in registry.DEPS.values():
        buckets += list(spec.inputs) + list(spec.emits)
    return topics.all_for(stages, buckets)


def _settings() -> Settings:
    from cli.main import load_settings

    return load_settings()


@topics_app.command("ensure")
def topics_ensure(
    partitions: int = typer.Option(0, help="Partitions per new topic (default DA_PARTITIONS)."),
) -> None:
    """Create every topic the pipeline uses that does not exist yet."""
    settings = _settings()
    check_kafka(settings)
    names = all_topics(settings)
    created = ensure_topics(settings, names, partitions or None)
    for name in names:
        typer.echo(f"{'created' if name in created else 'exists '}  {name}")


@topics_app.command("list")
def topics_list() -> None:
    """Print the name of every topic the pipeline uses."""
    for name in all_topics(_settings()):
        typer.echo(name)


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the schema, every DEP's tables and the collector's (idempotent)."""
    settings = _settings()
    applied = db.migrate(settings, registry.all_migrations() + COLLECTOR_MIGRATIONS)
    typer.echo(f"schema {settings.database_schema}: applied {len(applied)} migration(s)")
    for name in applied:
        typer.echo(f"  {name}")


@gep_app.command("run")
def gep_run() -> None:
    """Consume the ingest topic, publish canonical events, dead-letter invalid ones."""
    settings = _settings()
    stop = Stopper()
    stop.install()
    gep = Gep(Topics(settings.namespace), codec_for(settings), settings.max_message_bytes)
    run_transform(settings, GEP, gep, gep.input_topics(), stop)


@demux_app.command("run")
def demux_run() -> None:
    """Consume canonical events, publish discrete events (one metric each)."""
    settings = _settings()
    stop = Stopper()
    stop.install()
    demux = Demux(Topics(settings.namespace), codec_for(settings))
    run_transform(settings, DEMUX, demux, demux.input_topics(), stop)


@dep_app.command("run")
def dep_run(name: str = typer.Argument(..., help="The DEP to run (see `da dep list`).")) -> None:
    """Run one DEP: consume its DE topics and keep its tables (applies migrations first)."""
    try:
        spec = registry.get(name)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None
    settings = _settings()
    stop = Stopper()
    stop.install()
    db.migrate(settings, registry.all_migrations())
    handler = spec.build(settings, codec_for(settings))
    run_store(
        settings,
        dep_stage(name),
        handler,
        spec.topics(Topics(settings.namespace)),
        stop,
        outbox_owner=spec.name if spec.outbox else None,
        outbox_exactly_once=spec.outbox_exactly_once,
    )


@dep_app.command("list")
def dep_list() -> None:
    """Every registered DEP with its topics, consumer group and tables."""
    try:
        settings = _settings()
    except SettingsError:  # listing needs no services; show names without a namespace
        settings = Settings(kafka_bootstrap_servers="-", database_url="-")
    topics = Topics(settings.namespace)
    for spec in registry.DEPS.values():
        typer.echo(f"{spec.name}: {spec.description}")
        typer.echo(f"  topics: {', '.join(spec.topics(topics))}")
        typer.echo(f"  group:  {settings.group_id(dep_stage(spec.name))}")
        typer.echo(f"  tables: {', '.join(spec.tables)}")
        if spec.emits:
            emits = [topics.sink_bucket(src, b) for src, b in spec.emits]
            typer.echo(f"  emits:  {', '.join(emits)} (through the outbox)")
        if spec.selectors:
            typer.echo(f"  selectors: {', '.join(spec.selectors)} (others skipped undecoded)")
        typer.echo(f"  dead letters: {topics.dead_letter(dep_stage(spec.name))}")


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")
    app.add_typer(db_app, name="db")
    app.add_typer(gep_app, name="gep")
    app.add_typer(demux_app, name="demux")
    app.add_typer(dep_app, name="dep")
