"""``da run STAGE`` (with ``da gep run``, ``da demux run``, ``da dep run NAME`` as aliases),
``da topics``, ``da db``, ``da dep list``: all read the stage registry (``common.stages``)."""

from __future__ import annotations

import logging

import typer

from cli.output import Column, Format, OutputOption, Report, Table, render
from cli.schemas import codec_for
from collector.apps import MIGRATIONS as COLLECTOR_MIGRATIONS
from common import db, stages
from common.kafka import check_kafka, ensure_topics
from common.launch import run_store, run_transform
from common.runloop import Stopper
from common.settings import Settings, SettingsError
from common.stages import Stage
from common.topics import Topics
from dep import registry

log = logging.getLogger(__name__)

topics_app = typer.Typer(help="Create and list the pipeline's Kafka topics.", no_args_is_help=True)
db_app = typer.Typer(help="PostgreSQL state stores.", no_args_is_help=True)
gep_app = typer.Typer(help="GEP: validate and normalize raw events.", no_args_is_help=True)
demux_app = typer.Typer(
    help="demux: fan canonical events out into discrete events.", no_args_is_help=True
)
dep_app = typer.Typer(
    help="DEPs: discrete event processors keeping state stores.", no_args_is_help=True
)


def all_topics(settings: Settings) -> list[str]:
    return stages.all_topics(Topics(settings.namespace))


def _settings() -> Settings:
    from cli.main import load_settings

    return load_settings()


def _stage(name: str) -> Stage:
    try:
        return stages.get(name)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None


def run_stage(stage: Stage) -> None:
    """One process of a consuming stage, until SIGTERM / SIGINT."""
    settings = _settings()
    stop = Stopper()
    stop.install()
    topics = Topics(settings.namespace)
    inputs = stage.input_topics(topics)
    if stage.dep is None:
        run_transform(
            settings, stage.name, stage.handler(settings, codec_for(settings)), inputs, stop
        )
        return
    # The handler first: a setting it cannot use ends the command before the database changes.
    handler = stage.dep.build(settings, codec_for(settings))
    if applied := db.migrate(settings, registry.all_migrations()):
        log.info("applied migration(s): %s", ", ".join(applied))
    owner = stage.owner if stage.dep.outbox else None
    run_store(
        settings,
        stage.name,
        handler,
        inputs,
        stop,
        outbox_owner=owner,
        outbox_exactly_once=stage.dep.outbox_exactly_once,
        outbox_from_batches=stage.dep.outbox_from_batches,
    )


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
def topics_list(output: OutputOption = Format.TABLE) -> None:
    """Print the name of every topic the pipeline uses."""
    rows = [{"topic": name} for name in all_topics(_settings())]
    typer.echo(render(Report([Table("topics", [Column("topic", "topic")], rows)]), output))


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
    run_stage(stages.get("gep"))


@demux_app.command("run")
def demux_run() -> None:
    """Consume canonical events, publish discrete events (one metric each)."""
    run_stage(stages.get("demux"))


@dep_app.command("run")
def dep_run(name: str = typer.Argument(..., help="The DEP to run (see `da dep list`).")) -> None:
    """Run one DEP: consume its DE topics and keep its tables (applies migrations first)."""
    if name not in registry.DEPS:
        raise typer.BadParameter(f"no DEP named {name!r}; known: {', '.join(registry.DEPS)}")
    run_stage(stages.get(name))


_DEP_COLUMNS = [
    Column("name", "DEP"),
    Column("group", "consumer group"),
    Column("tables", "tables"),
    Column("dead_letter_topic", "dead-letter topic"),
    Column("description", "description", in_table=False),
    Column("input_topics", "input topics", in_table=False),
    Column("emits", "emits (through the outbox)", in_table=False),
    Column("selectors", "selectors (others skipped undecoded)", in_table=False),
]


@dep_app.command("list")
def dep_list(output: OutputOption = Format.TABLE) -> None:
    """Every registered DEP with its topics, consumer group and tables."""
    try:
        settings = _settings()
    except SettingsError:  # listing needs no services; show names without a namespace
        settings = Settings(kafka_bootstrap_servers="-", database_url="-")
    topics = Topics(settings.namespace)
    rows = [
        {
            "name": spec.name,
            "description": spec.description,
            "input_topics": stage.input_topics(topics),
            "group": stage.group(settings),
            "tables": list(spec.tables),
            "emits": stage.output_topics(topics),
            "selectors": list(spec.selectors),
            "dead_letter_topic": stage.dead_letter_topic(topics),
        }
        for stage in stages.STAGES
        if (spec := stage.dep) is not None
    ]
    typer.echo(render(Report([Table("deps", _DEP_COLUMNS, rows)]), output))


def run(
    name: str = typer.Argument(
        ..., help="The stage: gep, demux, collector, or a DEP's name (see `da dep list`)."
    ),
) -> None:
    """Run one process of a stage until SIGTERM / SIGINT (run more to scale out)."""
    stage = _stage(name)
    if stage.kind == "http":
        from cli.collector import collector_run

        collector_run()
        return
    run_stage(stage)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.add_typer(topics_app, name="topics")
    app.add_typer(db_app, name="db")
    app.add_typer(gep_app, name="gep")
    app.add_typer(demux_app, name="demux")
    app.add_typer(dep_app, name="dep")
