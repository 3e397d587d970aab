"""The bare COPY ceiling of a learning DEP: a hand-written consumer of the DEP's input topics that
decodes every DE with fastavro (parsed schemas reused) and stores it as it is, one row per
distinct DE (its name, its event id, the record as JSON), by COPY into a temporary table and one
merge, with every partition's offset in ``da_offsets`` in the same database transaction.

It keeps no state from the DEs, so it is the floor under any DEP that does, as ``bare dep`` is
under ``fulfillment-state``: the learning DEP's ratio to it is what its own work costs.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastavro import schemaless_reader

from bench.bare_loop import Timer, consume_into_db, framed, resume_from_db, schema
from bench.report import Figure
from bench.summary import learning_ceiling
from common import db
from common.kafka import make_consumer
from common.runloop import Message
from common.settings import Settings
from common.stages import get
from common.topics import Topics

_TABLE = (
    "CREATE TABLE IF NOT EXISTS bare_des (name text, event_id text, de jsonb NOT NULL,"
    " PRIMARY KEY (name, event_id))"
)


def measure(settings: Settings, source: Topics, n: int, dep: str) -> Figure:
    """Store the first ``n`` DEs of ``dep``'s input topics in ``source``'s namespace."""
    stage = get(dep)
    assert stage.dep is not None
    schemas = dict(
        (header, parsed)
        for parsed, header in (schema(settings, s) for s in stage.dep.input_schemas)
    )
    # The name bench.bare.KINDS gives it: the bench's clean-up deletes the group by that name.
    group = settings.group_id(f"bare-learning-{dep}")
    conn = db.connect(settings)
    cur = conn.cursor()
    cur.execute(_TABLE)
    cur.execute("TRUNCATE bare_des")  # each run starts on an empty table, as the DEP does
    cur.execute("CREATE TEMP TABLE incoming (LIKE bare_des)")
    conn.commit()
    consumer: Any = make_consumer(settings, group)
    consumer.subscribe(stage.input_topics(source), on_assign=resume_from_db(conn, group))
    timer = Timer()
    encode = msgspec.json.Encoder().encode

    def write(cur: Any, batch: list[Message]) -> None:
        with cur.copy("COPY incoming (name, event_id, de) FROM STDIN") as copy:
            for m in batch:
                header, avro = framed(m.value() or b"")
                r = schemaless_reader(avro, schemas[header], None)
                assert isinstance(r, dict)
                copy.write_row((r["name"], r["event_id"], encode(r).decode()))
        cur.execute(
            "INSERT INTO bare_des SELECT DISTINCT ON (name, event_id) * FROM incoming"
            " ON CONFLICT (name, event_id) DO NOTHING"
        )

    consume_into_db(consumer, conn, group, settings, n, timer, write)
    return timer.figure(learning_ceiling(dep), n)
