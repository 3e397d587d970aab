"""The benchmark's three-table ceiling of DEP ``fulfillment-state`` (``bench.bare_dep``) does the
DEP's work: on the same DEs (the bench's input, in time order) it leaves the same ``events``,
``current_fulfillments`` and ``fulfillments_history``. A ceiling that wrote less would make the
DEP's ratio to it look better than it is."""

from __future__ import annotations

from bench import bare_dep
from bench.ingest import produce, sample_messages
from bench.stage import measure
from cli.stages import all_topics
from common import db
from common.kafka import ensure_topics
from common.settings import Settings
from common.topics import Topics
from dep import registry
from tests.conftest import fresh_settings
from tests.services import Services

N = 3000
_TABLES = {
    "events": "event_id, fulfillment_id, event_type, created_at, created_by_id, payload",
    "current_fulfillments": "fulfillment_id, state, state_start_time, state_event_id, "
    "last_event_at, last_event_id, input_partition",
    "fulfillments_history": "fulfillment_id, state, time_in_state, entered_at, left_at, "
    "entered_event_id, left_event_id",
}


def _rows(settings: Settings, table: str) -> list[str]:
    with db.connect(settings) as conn:
        rows = conn.execute(f"SELECT {_TABLES[table]} FROM {table}").fetchall()
    return sorted(map(repr, rows))


def test_the_three_table_ceiling_writes_what_the_dep_writes(
    settings: Settings, services: Services
) -> None:
    ensure_topics(settings, all_topics(settings))
    db.migrate(settings, registry.all_migrations())
    messages, fulfillments = sample_messages(N)
    produce(settings, messages, "emit")
    for stage in ("gep", "demux", "fulfillment-state"):
        assert measure(settings, stage, N, 30.0).events == N, stage
    with fresh_settings(services) as ceiling:
        db.migrate(ceiling, registry.all_migrations())
        figure = bare_dep.measure(ceiling, Topics(settings.namespace), N, "dep-tables")
        assert figure.events == N
        for table in _TABLES:
            ours = _rows(settings, table)
            assert ours == _rows(ceiling, table), table
        # Not vacuous: every fulfillment has a row, and states were left.
        assert len(_rows(settings, "current_fulfillments")) == fulfillments
        assert _rows(settings, "fulfillments_history")
