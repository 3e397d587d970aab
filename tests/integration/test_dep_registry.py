"""Every registered DEP holds to the invariants: its input schemas exist, it has a dead-letter
topic, its tables exist after the migrations, and `da topics ensure` creates every topic it
reads and emits to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common import db
from common.codec import Codec
from common.kafka import make_admin
from common.names import dep_stage
from common.settings import Settings
from common.topics import Topics
from dep import registry
from dep.spec import DepSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(dep_settings: Settings) -> Settings:
    """Each DEP twice: on the shared database, and on a PostgreSQL of its own."""
    return dep_settings


def _tables(settings: Settings, dep: str | None) -> set[str]:
    with db.connect(settings, dep=dep) as conn:
        return {
            str(r[0])
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (settings.database_schema,)
            )
        }


@pytest.mark.parametrize("spec", list(registry.DEPS.values()), ids=lambda s: s.name)
def test_dep_invariants(spec: DepSpec, settings: Settings, settings_env: dict[str, str]) -> None:
    # Every input has a contract: DE topics an Avro schema under schemas/, dead-letter topics
    # the dead-letter headers (common/deadletter.py), which carry the original bytes as they are.
    assert spec.inputs or spec.dead_letters_of
    if spec.inputs:
        assert spec.input_schemas and set(spec.input_schemas) <= set(Codec().names())
    assert spec.tables and spec.migration_files()
    db.migrate(settings, registry.all_migrations())
    # Its tables and the core ones it commits with are where it keeps its state; a DEP on a
    # database of its own leaves none of its tables in the shared one.
    assert set(spec.tables) | {"da_offsets", "da_outbox", "da_parked", "da_inflight"} <= _tables(
        settings, spec.name
    )
    if settings.database_url_for(spec.name) != settings.database_url:
        assert not set(spec.tables) & _tables(settings, None)
    subprocess.run(
        [sys.executable, "-m", "cli.main", "topics", "ensure"],
        env=settings_env,
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    topics = Topics(settings.namespace)
    wanted = {topics.dead_letter(dep_stage(spec.name))} | set(spec.topics(topics))
    wanted |= {topics.sink_bucket(src, b) for src, b in spec.emits}
    present = set(make_admin(settings).list_topics(timeout=10).topics)
    assert wanted <= present
    assert spec.build(settings, Codec()) is not None
