"""Where integration and end-to-end tests find a real Kafka broker, a real PostgreSQL and a real
schema registry.

In order: the services the environment names (``DA_KAFKA_BOOTSTRAP_SERVERS``,
``DA_DATABASE_URL`` and ``DA_SCHEMA_REGISTRY_URL``); containers (no registry), when a Docker
engine answers; the project's own launcher (``da stack up``) in ``<repo>/.da/test-stack``. What
a test session started it stops at the end, with its data (every test works in a namespace of its
own, so nothing in it is worth keeping), unless another session is still using it or
``DA_TEST_KEEP_STACK`` is set; a stack that was already running is left alone.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import os
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import psycopg
from confluent_kafka import KafkaException
from psycopg import sql

from cli.stack import postgres as launcher_pg
from cli.stack.control import stack_status, start_stack, stop_stack
from common.kafka import ServiceUnavailable, check_kafka, make_admin
from common.settings import Settings

REPO = Path(__file__).resolve().parent.parent
TEST_STACK_DIR = REPO / ".da" / "test-stack"
# A second PostgreSQL cluster, for a DEP on a database of its own.
SECOND_DATABASE_DIR = TEST_STACK_DIR / "second-database"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:15"


@dataclass(frozen=True)
class Services:
    kafka_bootstrap_servers: str
    database_url: str
    origin: str  # "environment", "containers" or "launcher": shown when something goes wrong
    schema_registry_url: str = ""  # empty: none to be had (tests that need one fail in CI)


class NoServices(Exception):
    """No way to get real services; the message says why and what to do."""


def _check_reachable(services: Services) -> None:
    try:
        check_kafka(Settings(services.kafka_bootstrap_servers, services.database_url), 5.0)
        with psycopg.connect(services.database_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except (ServiceUnavailable, KafkaException, psycopg.Error) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NoServices(f"services from the {services.origin} are unreachable: {first}") from None


def _docker_answers() -> bool:
    # The docker client leaks a socket when the engine is absent; keep that ResourceWarning out
    # of the test run (warnings are errors there).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # Imported by name: the docker package has no type stubs, and only this line uses it.
            docker: Any = importlib.import_module("docker")
            docker.from_env(timeout=3).ping()
            return True
        except Exception:
            return False
        finally:
            gc.collect()


def _from_containers(cleanup: ExitStack) -> Services:
    try:
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers before the "community" package layout
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from testcontainers.kafka import KafkaContainer
            from testcontainers.postgres import PostgresContainer

    kafka: Any = (
        KafkaContainer(KAFKA_IMAGE)
        .with_kraft()
        # The image defaults suit a three-broker cluster; transactions need these on one.
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    postgres: Any = PostgresContainer(POSTGRES_IMAGE, dbname="da", driver=None)
    cleanup.enter_context(kafka.start(timeout=120))
    cleanup.enter_context(postgres.start())
    return Services(kafka.get_bootstrap_server(), postgres.get_connection_url(), "containers")


def _hold_shared(lock_path: Path, cleanup: ExitStack) -> TextIO:
    lock = cleanup.enter_context(lock_path.open("w"))
    fcntl.flock(lock, fcntl.LOCK_SH)
    return lock


def _from_launcher(state: Path, cleanup: ExitStack) -> Services:
    state.mkdir(parents=True, exist_ok=True)
    # Every session using this stack holds a shared lock: the session that started the stack
    # stops it only when it can take the lock exclusively, i.e. nobody else is using it.
    users = _hold_shared(state / "test-users.lock", cleanup)
    was_up = stack_status(state).all_up
    try:
        info = start_stack(state)
    except ServiceUnavailable as exc:
        if not was_up:
            _stop_if_unused(state, users)  # do not leave half a stack running
        raise NoServices(f"could not start the local stack in {state}: {exc}") from None
    if not was_up and not os.environ.get("DA_TEST_KEEP_STACK"):
        cleanup.callback(_stop_if_unused, state, users)
    return Services(
        info.kafka_bootstrap_servers, info.database_url, "launcher", info.schema_registry_url
    )


def _stop_if_unused(state: Path, users: TextIO) -> None:
    try:
        fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another test session still uses it; the last one out does not stop it either
    # Purged: a kept broker loads every partition of every earlier session at start, and with
    # ~20,000 of them it ran out of file handles and would not start at all.
    stop_stack(state, purge=True)


def drop_namespace(settings: Settings, urls: Sequence[str] = ()) -> None:
    """Drop a test's schema (in ``urls``, default the settings' database) and delete its
    namespace's topics, so that a session's broker holds only the live tests' partitions (a
    full suite creates thousands). The topics go even when the drop raises. Their deletion is
    best effort: a test that stopped the broker leaves them to the purge when the stack stops."""
    try:
        schema = sql.Identifier(settings.database_schema)
        for url in urls or [settings.database_url]:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
    finally:
        _drop_topics(settings)


def _drop_topics(settings: Settings) -> None:
    admin = make_admin(settings, quiet=True)
    try:
        listed = admin.list_topics(timeout=10).topics
        mine = [t for t in listed if t.startswith(f"{settings.namespace}.")]
        if not mine:
            return
        for future in admin.delete_topics(mine, operation_timeout=10).values():
            future.result()
    except KafkaException:
        pass


def acquire(cleanup: ExitStack, env: dict[str, str] | None = None) -> Services:
    """Real services for this session; their shutdown is registered on ``cleanup``.

    Raises ``NoServices`` when none can be had.
    """
    env = dict(os.environ if env is None else env)
    kafka, db = env.get("DA_KAFKA_BOOTSTRAP_SERVERS"), env.get("DA_DATABASE_URL")
    if kafka and db:
        services = Services(kafka, db, "environment", env.get("DA_SCHEMA_REGISTRY_URL", ""))
        _check_reachable(services)
        return services
    attempts: list[Callable[[], Services]] = []
    if _docker_answers():
        attempts.append(lambda: _from_containers(cleanup))
    attempts.append(lambda: _from_launcher(TEST_STACK_DIR, cleanup))
    reasons = []
    for attempt in attempts:
        try:
            return attempt()
        except NoServices as exc:
            reasons.append(str(exc))
        except Exception as exc:
            reasons.append(f"{type(exc).__name__}: {exc}")
    raise NoServices(
        "; ".join(reasons) + " (or set DA_KAFKA_BOOTSTRAP_SERVERS and "
        "DA_DATABASE_URL to running services)"
    )


def second_database(cleanup: ExitStack, env: dict[str, str] | None = None) -> str:
    """The URL of a second PostgreSQL cluster, apart from the services' (a DEP's own database):
    ``DA_TEST_SECOND_DATABASE_URL``, else a private cluster the launcher starts in
    ``<repo>/.da/test-stack/second-database``, stopped like the stack (see ``acquire``).

    Raises ``NoServices`` when none can be had."""
    env = dict(os.environ if env is None else env)
    if url := env.get("DA_TEST_SECOND_DATABASE_URL"):
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise NoServices(f"DA_TEST_SECOND_DATABASE_URL is unreachable: {exc}") from None
        return url
    state = SECOND_DATABASE_DIR
    state.mkdir(parents=True, exist_ok=True)
    users = _hold_shared(state / "test-users.lock", cleanup)
    with (state / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions starting it at once would race for initdb
        was_up = launcher_pg.status(state) is not None
        try:
            url = launcher_pg.start(state)
        except ServiceUnavailable as exc:
            raise NoServices(f"could not start a second PostgreSQL in {state}: {exc}") from None
    if not was_up and not env.get("DA_TEST_KEEP_STACK"):
        cleanup.callback(_stop_second_if_unused, state, users)
    return url


def _stop_second_if_unused(state: Path, users: TextIO) -> None:
    try:
        fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return
    launcher_pg.stop(state)
