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

from bench.bare_loop import consume_into_db, framed, schema
from bench.report import Figure
from bench.summary import learning_ceiling
from common.runloop import Message
from common.settings import Settings
from common.stages import get
from common.topics import Topics

_TABLE = (
    "CREATE TABLE IF NOT EXISTS bare_des (name text, event_id text, de jsonb NOT NULL,"
    " PRIMARY KEY (name, event_id))"
)


def measure(settings: Settings, source: Topics, n: int, dep: str) -> Figure:
    """Store the first ``n`` DEs of ``dep``'s input topics (in ``source``'s namespace) in the
    schema of ``settings``."""
    stage = get(dep)
    assert stage.dep is not None
    schemas = dict(
        (header, parsed)
        for parsed, header in (schema(settings, s) for s in stage.dep.input_schemas)
    )
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

    return consume_into_db(
        settings,
        f"learning-{dep}",  # a kind of bench.bare.KINDS: the bench's clean-up finds its group
        stage.input_topics(source),
        # Each run starts on an empty table, as the DEP does.
        [_TABLE, "TRUNCATE bare_des", "CREATE TEMP TABLE incoming (LIKE bare_des)"],
        write,
        n,
        learning_ceiling(dep),
    )
