"""Fixtures for tests that need real services (see ``tests/services.py`` for where they come from).

``services`` is created lazily, the first time a test asks for it, so ``tests/unit`` needs nothing
running. A missing service fails the run when ``CI`` is set and skips the test otherwise: it never
turns into a green pass.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from common.settings import Settings, dep_variable_name
from common.stages import DEPS
from tests.services import NoServices, Services, acquire, drop_namespace, second_database

_TESTS = Path(__file__).resolve().parent
_MARK_BY_DIR = {"integration": "integration", "e2e": "e2e", "cluster": "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Whatever lives in tests/integration or tests/e2e is marked, so `-m "not integration"` and
    # `-m e2e` select correctly even when a module forgets its `pytestmark`.
    for item in items:
        path = Path(str(item.path)).resolve()
        parts = path.relative_to(_TESTS).parts if _TESTS in path.parents else ()
        if parts and parts[0] in _MARK_BY_DIR:
            item.add_marker(getattr(pytest.mark, _MARK_BY_DIR[parts[0]]))
        elif parts and parts[0] == "unit" and "services" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(
                f"{item.nodeid}: tests/unit must need nothing running; "
                "a test that uses real services belongs in tests/integration"
            )


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """A real Kafka broker and a real PostgreSQL for the whole session."""
    with ExitStack() as cleanup:
        try:
            found = acquire(cleanup)
        except NoServices as exc:
            if os.environ.get("CI"):
                pytest.fail(f"CI: no Kafka/PostgreSQL for integration tests: {exc}", pytrace=False)
            pytest.skip(f"no Kafka/PostgreSQL: {exc}")
        yield found


@pytest.fixture(scope="session")
def second_database_url(services: Services) -> Iterator[str]:
    """A second PostgreSQL cluster (``tests/services.py``), for DEPs on databases of their own."""
    with ExitStack() as cleanup:
        try:
            found = second_database(cleanup)
        except NoServices as exc:
            if os.environ.get("CI"):
                pytest.fail(f"CI: no second PostgreSQL: {exc}", pytrace=False)
            pytest.skip(f"no second PostgreSQL: {exc}")
        yield found


@pytest.fixture
def local_stack(services: Services) -> Services:
    """The services, when they come from the local stack's launcher (a test that stops or
    inspects that stack); with CI set anything else fails."""
    if services.origin != "launcher":
        reason = f"needs the local stack; the services come from the {services.origin}"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return services


@pytest.fixture(scope="session")
def schema_registry(services: Services) -> str:
    """The URL of a real Confluent-compatible schema registry."""
    if not services.schema_registry_url:
        reason = f"no schema registry with the services from the {services.origin}"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return services.schema_registry_url


@contextmanager
def fresh_settings(services: Services, own_database: str = "") -> Iterator[Settings]:
    """Settings on the real services, with a fresh namespace (topics, groups) and schema; the
    registry wire format whenever a registry runs with them. ``own_database``: every DEP keeps
    its state there (DA_DEP_<NAME>_DATABASE_URL), the same fresh schema in it."""
    dep_urls = tuple((dep_variable_name(n), own_database) for n in DEPS) if own_database else ()
    current = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap_servers,
        database_url=services.database_url,
        schema_registry_url=services.schema_registry_url,
        namespace=f"t{uuid.uuid4().hex[:10]}",
        database_schema=f"t_{uuid.uuid4().hex[:10]}",
        partitions=3,
        batch_size=500,
        poll_timeout_s=0.2,
        io_timeout_s=10,
        dep_database_urls=dep_urls,
    )
    current.validate()
    schema = sql.Identifier(current.database_schema)
    for url in current.database_urls():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    try:
        yield current
    finally:  # also when a test using this inline fails
        drop_namespace(current, current.database_urls())


def env_for(settings: Settings) -> dict[str, str]:
    """The process environment plus ``DA_*`` equal to ``settings``: for running the real CLI."""
    return {
        **os.environ,
        "DA_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DA_DATABASE_URL": settings.database_url,
        "DA_NAMESPACE": settings.namespace,
        "DA_DATABASE_SCHEMA": settings.database_schema,
        "DA_PARTITIONS": str(settings.partitions),
        "DA_BATCH_SIZE": str(settings.batch_size),
        "DA_POLL_TIMEOUT_S": str(settings.poll_timeout_s),
        "DA_IO_TIMEOUT_S": str(settings.io_timeout_s),
        "DA_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        **{f"DA_DEP_{name}_DATABASE_URL": url for name, url in settings.dep_database_urls},
    }


@pytest.fixture
def settings(services: Services) -> Iterator[Settings]:
    """Settings on the real services, with a fresh namespace and schema (``fresh_settings``)."""
    with fresh_settings(services) as current:
        yield current


@pytest.fixture(params=["shared-database", "own-database"])
def dep_settings(request: pytest.FixtureRequest, services: Services) -> Iterator[Settings]:
    """``settings`` twice: every DEP on the shared database, then every DEP on a second
    PostgreSQL cluster of its own. A module of DEP tests runs on both by overriding
    ``settings`` with it."""
    own = request.getfixturevalue("second_database_url") if request.param == "own-database" else ""
    with fresh_settings(services, own) as current:
        yield current


@pytest.fixture
def settings_env(settings: Settings) -> dict[str, str]:
    return env_for(settings)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus's checker (Debian's ``prometheus`` package, from deploy/install-deps.sh)."""
    import shutil

    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(
                "promtool not found: run deploy/install-deps.sh (Debian package prometheus)"
            )
        pytest.skip("promtool not found: run deploy/install-deps.sh")
    return found


CHROMIUM = "/usr/bin/chromium"  # Debian's package (deploy/install-deps.sh); never a download


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium and Playwright's Python API to drive it."""
    import importlib.util
    import shutil

    missing = []
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing.append(f"{CHROMIUM} (Debian package chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright Python package")
    if missing:
        reason = f"{' and '.join(missing)} not found: run `make deps`"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM if os.path.exists(CHROMIUM) else str(shutil.which("chromium"))
