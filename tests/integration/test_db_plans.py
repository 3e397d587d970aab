"""A stage's statements are planned for their parameters, never by one generic plan.

psycopg prepares a statement it has run five times, and PostgreSQL may then keep one generic plan
for it. Made while a DEP's table was small, with ``= ANY($1)`` guessed at ten keys, that plan
scanned ``current_fulfillments`` and compared each row with every key of the batch (a plan for
the actual array hashes it), and it was kept while the table grew: every batch of
fulfillment-state spent 15-24 ms there, and the DEP ran at half its rate, depending on when the
plan was made. ``common.db.connect`` has every statement planned for its parameters."""

from __future__ import annotations

import psycopg

from common import db
from common.settings import Settings

Conn = psycopg.Connection[tuple[object, ...]]
_LOOKUP = "SELECT id, v FROM grows WHERE id = ANY(%s)"


def _plans_after_growth(conn: Conn) -> tuple[int, str]:
    """The generic plans the look-up got, and its plan once the table has grown."""
    conn.execute("CREATE TEMP TABLE grows (id text PRIMARY KEY, v int)")
    conn.execute("INSERT INTO grows SELECT 'k' || g, g FROM generate_series(1, 100) g")
    conn.execute("ANALYZE grows")  # as autovacuum does early on: the table is small
    ids = [f"k{i}" for i in range(250)]
    for _ in range(8):  # prepared and planned while the table is small
        conn.execute(_LOOKUP, (ids,), prepare=True).fetchall()
    conn.execute("INSERT INTO grows SELECT 'k' || g, g FROM generate_series(101, 50000) g")
    conn.execute(_LOOKUP, (ids,), prepare=True).fetchall()
    row = conn.execute(
        "SELECT name, generic_plans FROM pg_prepared_statements WHERE statement LIKE %s",
        ("%FROM grows%",),
    ).fetchone()
    assert row is not None
    name, generic = row
    keys = "{" + ",".join(ids) + "}"
    plan = "\n".join(str(r[0]) for r in conn.execute(f"EXPLAIN EXECUTE {name}('{keys}')"))
    return int(str(generic)), plan


def test_a_prepared_lookup_is_planned_for_its_keys_as_the_table_grows(settings: Settings) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as plain:
        generic, plan = _plans_after_growth(plain)
    # What a plain connection does here: one generic plan, the keys a parameter it cannot hash.
    assert generic > 0 and "ANY ($1)" in plan, plan
    with db.connect(settings, autocommit=True) as ours:
        generic, plan = _plans_after_growth(ours)
    assert generic == 0 and "ANY ($1)" not in plan, plan
