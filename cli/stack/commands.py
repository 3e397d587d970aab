"""``da stack up | down | status | broker``: the local stack's commands (``cli/stack/control.py``
and ``cli/stack/cluster.py`` do the work)."""

from __future__ import annotations

import time

import typer

from cli.stack import cluster
from cli.stack.control import connected, stack_file_of, stack_status, start_stack, stop_stack
from common.settings import Settings, SettingsError
from common.stack_paths import state_dir


def _say(message: str) -> None:
    typer.echo(message, err=True)


def up(
    brokers: int = typer.Option(
        0,
        "--brokers",
        help="Kafka brokers: 1, or 3 for a KRaft cluster on loopback with every topic on all "
        "three (2 in sync); default: as many as the stack was made with, 1 for a new one.",
    ),
) -> None:
    """Start Kafka, PostgreSQL and the schema registry (if not running); print their settings."""
    state = state_dir()
    before = stack_status(state)
    began = time.monotonic()
    info = start_stack(state, brokers or None)
    for name, address, was in (
        ("postgres", info.database_url, before.postgres),
        ("kafka", info.kafka_bootstrap_servers, before.kafka),
        ("schema-registry", info.schema_registry_url, before.schema_registry),
    ):
        _say(f"{name}: {'already running' if was else 'started'} at {address}")
    if not before.all_up:
        _say(f"stack up in {time.monotonic() - began:.1f}s; settings in {stack_file_of(state)}")
    # Settings on stdout, messages on stderr: `export $(da stack up)` works.
    for key, value in info.env().items():
        typer.echo(f"{key}={value}")


def down(
    purge: bool = typer.Option(
        False, "--purge", help="Also delete the Kafka, PostgreSQL and registry data."
    ),
    force: bool = typer.Option(
        False, "--force", help="Stop even while stages or commands are connected."
    ),
) -> None:
    """Stop the local Kafka, PostgreSQL and schema registry; refused while stages are connected
    (unless --force)."""
    state = state_dir()
    busy = [] if force else connected(state)
    if busy:
        _say(
            f"da stack down: still connected: {', '.join(busy)}; stop them first "
            "(they would retry until the stack is back), or pass --force"
        )
        raise typer.Exit(2)
    was = stop_stack(state, purge=purge)
    for name, address in was.named():
        _say(f"{name}: {'stopped' if address else 'was not running'}")
    if purge:
        _say(f"deleted {state / 'kafka'}, {state / 'pg'} and {state / 'registry'}")


def status() -> None:
    """Show whether each service runs; exit code 3 when any is down."""
    current = stack_status(state_dir())
    for name, address in current.named():
        typer.echo(f"{name}: up at {address}" if address else f"{name}: down")
        if name == "kafka":
            for broker in current.brokers:
                typer.echo(broker.line())
    try:
        properties = Settings.load().shown_kafka_properties()
    except SettingsError:
        properties = []  # nothing configured yet: the lines above say what to do
    if properties:
        typer.echo(f"kafka client properties (DA_KAFKA_*): {', '.join(properties)}")
    if not current.all_up:
        typer.echo(f"start it with `da stack up` (state dir {state_dir()})", err=True)
        raise typer.Exit(3)


def broker(
    action: str = typer.Argument(..., help=f"One of: {', '.join(cluster.ACTIONS)}."),
    number: int = typer.Argument(..., help="The broker, 1 to 3."),
    timeout: float = typer.Option(
        300.0,
        "--timeout",
        help="start, restart: seconds the broker may take to be back (it recovers every "
        "partition's log first, which is slow on a busy machine).",
    ),
) -> None:
    """Inject a fault into one broker of a `--brokers 3` stack, or mend it: stop (controlled
    shutdown), kill (SIGKILL), pause (SIGSTOP), resume (SIGCONT), start, restart. start and
    restart wait until the broker is back in the cluster."""
    if action not in cluster.ACTIONS:
        raise typer.BadParameter(f"{action!r} is not one of {', '.join(cluster.ACTIONS)}")
    state = state_dir()
    _say(cluster.act(state, number, action, timeout_s=timeout))
    for shown in cluster.brokers(state):
        _say(shown.line())


def register(app: typer.Typer) -> None:
    stack = typer.Typer(
        help="Local Kafka + PostgreSQL + schema registry for development and tests (no Docker).",
        no_args_is_help=True,
    )
    stack.command("up")(up)
    stack.command("down")(down)
    stack.command("status")(status)
    stack.command("broker")(broker)
    app.add_typer(stack, name="stack")
