"""``da collector run`` (the HTTP collector); ``da apps add | list | revoke`` (who may post)."""

from __future__ import annotations

import signal

import typer

from cli.output import Column, Format, OutputOption, Report, Table, iso, render
from collector import apps
from collector.eventtypes import EventTypeError
from common import db
from common.kafka import ServiceUnavailable, check_kafka, make_admin
from common.names import COLLECTOR
from common.settings import Settings
from common.topics import Topics
from dep import registry

collector_app = typer.Typer(
    help="The HTTP collector: web and mobile apps post events.", no_args_is_help=True
)
apps_app = typer.Typer(help="Applications trusted to post events.", no_args_is_help=True)


def _settings() -> Settings:
    from cli.main import load_settings

    return load_settings()


def _migrate(settings: Settings) -> None:
    db.migrate(settings, registry.all_migrations() + apps.MIGRATIONS)


def _check_topics(settings: Settings) -> None:
    topics = Topics(settings.namespace)
    wanted = [topics.ingest, topics.dead_letter(COLLECTOR)]
    existing = make_admin(settings).list_topics(timeout=settings.io_timeout_s).topics
    missing = [t for t in wanted if t not in existing]
    if missing:
        raise ServiceUnavailable(f"topic {missing[0]} does not exist: run `da topics ensure`")


@collector_app.command("run")
def collector_run() -> None:
    """Serve the collector on DA_COLLECTOR_HOST:DA_COLLECTOR_PORT until SIGTERM / SIGINT."""
    import uvicorn

    from collector.app import create_app

    settings = _settings()
    check_kafka(settings)
    _check_topics(settings)
    _migrate(settings)
    try:
        api = create_app(settings)
    except EventTypeError as exc:
        raise ServiceUnavailable(str(exc)) from None
    # uvicorn shuts down gracefully on SIGTERM / SIGINT, then raises the signal again with the
    # handler it found installed; with these no-op handlers the process then exits 0, like
    # every other stage, instead of dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: None)
    uvicorn.run(
        api,
        host=settings.collector_host,
        port=settings.collector_port,
        loop="uvloop",
        http="httptools",
        # Per-request lines would cost more than the request at 10k/s; /metrics counts them.
        access_log=False,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.collector_ack_timeout_s) + 1,
    )


@apps_app.command("add")
def apps_add(
    name: str = typer.Argument(..., help="A name for the application, e.g. shop-web."),
    rate: float = typer.Option(0.0, help="Events per second (default DA_COLLECTOR_RATE_LIMIT)."),
    read: bool = typer.Option(False, "--read", help="May also query events and errors."),
    ingest: bool = typer.Option(True, "--ingest/--no-ingest", help="May post events."),
) -> None:
    """Register an application and print its API key (shown this once, stored only hashed)."""
    settings = _settings()
    _migrate(settings)
    scopes = tuple(s for s, on in (("ingest", ingest), ("read", read)) if on)
    try:
        with db.connect(settings, autocommit=True) as conn:
            key = apps.add(conn, name, scopes, rate or None)
    except apps.AppError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(key)
    typer.echo(
        f"application {name!r} added ({', '.join(scopes)}); keep the key above: it is "
        "not shown again",
        err=True,
    )


_APP_COLUMNS = [
    Column("name", "application"),
    Column("scopes", "scopes"),
    Column("rate_limit", "rate (events/s)"),
    Column("state", "state"),
    Column("created_at", "created (UTC)"),
    Column("revoked_at", "revoked (UTC)"),
]


@apps_app.command("list")
def apps_list(output: OutputOption = Format.TABLE) -> None:
    """Every application, active or revoked (never a key); rate - is DA_COLLECTOR_RATE_LIMIT."""
    settings = _settings()
    _migrate(settings)
    with db.connect(settings, autocommit=True) as conn:
        found = apps.list_apps(conn)
    rows = [
        {
            "name": a.name,
            "scopes": list(a.scopes),
            "rate_limit": a.rate_limit or None,
            "state": "revoked" if a.revoked_at else "active",
            "created_at": a.created_at,
            "revoked_at": a.revoked_at,
        }
        for a in found
    ]
    typer.echo(render(Report([Table("apps", _APP_COLUMNS, rows)]), output))


@apps_app.command("rotate")
def apps_rotate(
    name: str = typer.Argument(..., help="The application whose key to replace."),
    grace: float = typer.Option(
        3600.0, help="Seconds the old key keeps working, for clients to move to the new one."
    ),
) -> None:
    """Issue a new API key (printed once); the old key is refused after the grace period."""
    settings = _settings()
    _migrate(settings)
    try:
        with db.connect(settings, autocommit=True) as conn:
            key, until = apps.rotate(conn, name, grace)
    except apps.AppError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(key)
    typer.echo(
        f"application {name!r}: new key above (not shown again); the old key works until "
        f"{iso(until)}",
        err=True,
    )


@apps_app.command("revoke")
def apps_revoke(name: str = typer.Argument(..., help="The application to shut out.")) -> None:
    """Revoke an application's key; collectors refuse it within DA_COLLECTOR_APPS_REFRESH_S."""
    settings = _settings()
    _migrate(settings)
    try:
        with db.connect(settings, autocommit=True) as conn:
            apps.revoke(conn, name)
    except apps.AppError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"revoked {name}")


def register(app: typer.Typer) -> None:
    app.add_typer(collector_app, name="collector")
    app.add_typer(apps_app, name="apps")
