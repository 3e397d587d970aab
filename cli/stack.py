"""``da stack up | down | status``: a local Kafka broker, PostgreSQL cluster and schema registry.

All three run as plain processes from the state dir (``DA_STATE_DIR``, default ``./.da``), no
Docker.
``up`` writes the connection settings to the stack file, which ``Settings.load`` reads for every
variable the environment leaves unset, so after ``da stack up`` every other command just works.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import typer

from cli import launcher_kafka, launcher_pg, launcher_registry
from common.kafka import connected_members
from common.settings import Settings, SettingsError, stack_file, state_dir


@dataclass(frozen=True)
class StackInfo:
    kafka_bootstrap_servers: str
    database_url: str
    schema_registry_url: str

    def env(self) -> dict[str, str]:
        return {
            "DA_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "DA_DATABASE_URL": self.database_url,
            "DA_SCHEMA_REGISTRY_URL": self.schema_registry_url,
        }


@dataclass(frozen=True)
class StackStatus:
    """Address of each service, or None when it is down."""

    kafka: str | None
    postgres: str | None
    schema_registry: str | None

    def named(self) -> list[tuple[str, str | None]]:
        return [
            ("kafka", self.kafka),
            ("postgres", self.postgres),
            ("schema-registry", self.schema_registry),
        ]

    @property
    def all_up(self) -> bool:
        return all(address is not None for _, address in self.named())

    @property
    def any_up(self) -> bool:
        return any(address is not None for _, address in self.named())


def _stack_file(state: Path) -> Path:
    return stack_file({"DA_STATE_DIR": str(state)})


@contextmanager
def _locked(state: Path) -> Iterator[None]:
    # Two `up`s at once (two test sessions, say) would race for ports and initdb the same dir.
    state.mkdir(parents=True, exist_ok=True)
    with (state / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def stack_status(state: Path) -> StackStatus:
    return StackStatus(
        kafka=launcher_kafka.status(state),
        postgres=launcher_pg.status(state),
        schema_registry=launcher_registry.status(state),
    )


def start_stack(state: Path) -> StackInfo:
    """Start whatever is not running (idempotent) and write the stack file."""
    state = state.resolve()
    with _locked(state):
        # The registry's JVM warms up meanwhile. PostgreSQL first: it is quick, and a Kafka
        # failure then leaves a usable half to retry.
        launcher_registry.spawn(state)
        info = StackInfo(
            database_url=launcher_pg.start(state),
            kafka_bootstrap_servers=launcher_kafka.start(state),
            schema_registry_url=launcher_registry.wait_ready(state),
        )
        lines = [f"{key}={value}" for key, value in info.env().items()]
        _stack_file(state).write_text("# written by `da stack up`\n" + "\n".join(lines) + "\n")
    return info


def stop_stack(state: Path, purge: bool = False) -> StackStatus:
    """Stop both services; returns what was running. ``purge`` also deletes their data."""
    state = state.resolve()
    with _locked(state):
        was = stack_status(state)
        launcher_registry.stop(state)
        launcher_kafka.stop(state)
        launcher_pg.stop(state)
        _stack_file(state).unlink(missing_ok=True)
        if purge:
            shutil.rmtree(state / "kafka", ignore_errors=True)
            shutil.rmtree(state / "registry", ignore_errors=True)
            launcher_pg.purge(state)
    return was


def _say(message: str) -> None:
    typer.echo(message, err=True)


def up() -> None:
    """Start Kafka, PostgreSQL and the schema registry (if not running); print their settings."""
    state = state_dir()
    before = stack_status(state)
    began = time.monotonic()
    info = start_stack(state)
    for name, address, was in (
        ("postgres", info.database_url, before.postgres),
        ("kafka", info.kafka_bootstrap_servers, before.kafka),
        ("schema-registry", info.schema_registry_url, before.schema_registry),
    ):
        _say(f"{name}: {'already running' if was else 'started'} at {address}")
    if not before.all_up:
        _say(f"stack up in {time.monotonic() - began:.1f}s; settings in {_stack_file(state)}")
    # Settings on stdout, messages on stderr: `export $(da stack up)` works.
    for key, value in info.env().items():
        typer.echo(f"{key}={value}")


def connected(state: Path) -> list[str]:
    """What still uses the local stack: consumer groups with members, pipeline sessions."""
    current = stack_status(state)
    found = []
    if current.kafka is not None:
        groups = connected_members(Settings(current.kafka, current.postgres or "-"))
        found += [f"{group} ({n} consumer{'s' if n > 1 else ''})" for group, n in groups.items()]
    if current.postgres is not None:
        with psycopg.connect(current.postgres, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'da-pipeline' AND pid <> pg_backend_pid()"
            ).fetchone()
        if row and row[0]:
            found.append(f"PostgreSQL ({row[0]} pipeline session{'s' if row[0] > 1 else ''})")
    return found


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
    try:
        properties = Settings.load().shown_kafka_properties()
    except SettingsError:
        properties = []  # nothing configured yet: the lines above say what to do
    if properties:
        typer.echo(f"kafka client properties (DA_KAFKA_*): {', '.join(properties)}")
    if not current.all_up:
        typer.echo(f"start it with `da stack up` (state dir {state_dir()})", err=True)
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    stack = typer.Typer(
        help="Local Kafka + PostgreSQL + schema registry for development and tests (no Docker).",
        no_args_is_help=True,
    )
    stack.command("up")(up)
    stack.command("down")(down)
    stack.command("status")(status)
    app.add_typer(stack, name="stack")
