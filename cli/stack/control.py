"""Starting, stopping and asking after the whole local stack (Kafka, PostgreSQL, the schema
registry) in one state dir; ``start_stack`` writes the stack file the settings read."""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from cli.stack import cluster, kafka, postgres, registry
from common.kafka import connected_members
from common.settings import Settings
from common.stack_paths import stack_file


@dataclass(frozen=True)
class StackInfo:
    kafka_bootstrap_servers: str
    database_url: str
    schema_registry_url: str
    replication_factor: int = 1  # the brokers: every topic on all of them

    def env(self) -> dict[str, str]:
        found = {
            "DA_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "DA_DATABASE_URL": self.database_url,
            "DA_SCHEMA_REGISTRY_URL": self.schema_registry_url,
        }
        if self.replication_factor > 1:
            found["DA_REPLICATION_FACTOR"] = str(self.replication_factor)
        return found


@dataclass(frozen=True)
class StackStatus:
    """Address of each service, or None when it is down."""

    kafka: str | None  # a cluster: the brokers that are up
    postgres: str | None
    schema_registry: str | None
    brokers: tuple[cluster.Broker, ...] = ()  # a cluster's, each

    def named(self) -> list[tuple[str, str | None]]:
        return [
            ("kafka", self.kafka),
            ("postgres", self.postgres),
            ("schema-registry", self.schema_registry),
        ]

    @property
    def all_up(self) -> bool:
        up = all(address is not None for _, address in self.named())
        return up and all(broker.state == "up" for broker in self.brokers)

    @property
    def any_up(self) -> bool:
        return any(address is not None for _, address in self.named())


def stack_file_of(state: Path) -> Path:
    return stack_file({"DA_STATE_DIR": str(state)})


@contextmanager
def _locked(state: Path) -> Iterator[None]:
    # Two `up`s at once (two test sessions, say) would race for ports and initdb the same dir.
    state.mkdir(parents=True, exist_ok=True)
    with (state / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def stack_status(state: Path) -> StackStatus:
    brokers = tuple(cluster.brokers(state))
    up = ",".join(broker.address for broker in brokers if broker.state == "up")
    return StackStatus(
        kafka=(up or None) if brokers else kafka.status(state),
        postgres=postgres.status(state),
        schema_registry=registry.status(state),
        brokers=brokers,
    )


def start_stack(state: Path, brokers: int | None = None) -> StackInfo:
    """Start whatever is not running (idempotent) and write the stack file. ``brokers``: 1 or 3;
    None: as many as the stack's data was made with (1 for a new one)."""
    state = state.resolve()
    with _locked(state):
        size = cluster.choose_size(state, brokers)
        # The registry's JVM warms up meanwhile. PostgreSQL first: it is quick, and a Kafka
        # failure then leaves a usable half to retry.
        registry.spawn(state)
        info = StackInfo(
            database_url=postgres.start(state),
            kafka_bootstrap_servers=kafka.start(state) if size == 1 else cluster.start(state),
            schema_registry_url=registry.wait_ready(state),
            replication_factor=size,
        )
        lines = [f"{key}={value}" for key, value in info.env().items()]
        stack_file_of(state).write_text("# written by `da stack up`\n" + "\n".join(lines) + "\n")
    return info


def stop_stack(state: Path, purge: bool = False) -> StackStatus:
    """Stop both services; returns what was running. ``purge`` also deletes their data."""
    state = state.resolve()
    with _locked(state):
        was = stack_status(state)
        registry.stop(state)
        kafka.stop(state)
        cluster.stop(state)
        postgres.stop(state)
        stack_file_of(state).unlink(missing_ok=True)
        if purge:
            shutil.rmtree(state / "kafka", ignore_errors=True)
            shutil.rmtree(state / "registry", ignore_errors=True)
            postgres.purge(state)
    return was


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
