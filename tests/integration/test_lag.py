"""Lag reads 0 at rest: after the pipeline drains, every partition of every group is committed up
to the end of its input, in Kafka and in ``da_offsets``, commit markers of transactional inputs
included."""

from __future__ import annotations

from common import db, lag, stages
from common.codec import Codec
from common.launch import run_store, run_transform
from common.runloop import Stopper
from common.settings import Settings
from common.topics import Topics
from dep import registry
from tests.integration.test_ops import _ingest, _rows

DEP = "fulfillment-state"


def test_every_partition_reads_lag_zero_once_drained(settings: Settings) -> None:
    _ingest(settings, _rows(5, 40))
    topics = Topics(settings.namespace)
    # Each stage runs until it saw nothing for a while, well past the loop's idle advance.
    for name in ("gep", "demux"):
        stage = stages.get(name)
        run_transform(
            settings,
            stage.name,
            stage.handler(settings, Codec()),
            stage.input_topics(topics),
            Stopper(),
            idle_stop_s=4,
        )
    db.migrate(settings, registry.all_migrations())
    dep = stages.get(DEP)
    assert dep.dep is not None
    run_store(
        settings,
        dep.name,
        dep.dep.build(settings, Codec()),
        dep.input_topics(topics),
        Stopper(),
        idle_stop_s=4,
    )
    for name in ("gep", "demux", DEP):
        stage = stages.get(name)
        group = stage.group(settings)
        assert group is not None
        lags = lag.kafka_lag(settings, group, stage.input_topics(topics))
        assert lags and any(x.end > 0 for x in lags)
        behind = [x for x in lags if x.committed != x.end and x.end > 0]
        assert behind == [], f"{name}: Kafka committed offsets short of the end: {behind}"
        if stage.dep is not None:
            with db.connect(settings) as conn:
                stored = lag.stored_offsets(conn, group)
            short = [x for x in lags if x.end > 0 and stored.get((x.topic, x.partition)) != x.end]
            assert short == [], f"{name}: da_offsets short of the end: {short} vs {stored}"
