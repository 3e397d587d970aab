"""The walking skeleton end to end: the real CLI processes on real Kafka and PostgreSQL.

A CSV whose events arrive out of order, duplicated and with bad rows among them is replayed while
each stage is killed (SIGKILL) and restarted once; the three tables must equal an independent
computation of the rules, the bad rows must be dead-lettered with reasons, and no topic may hold
a duplicate.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
from collections import Counter
from contextlib import closing
from dataclasses import asdict, replace
from pathlib import Path

import psycopg
from psycopg import sql

from cli.sample.fulfillments import COLUMNS, generate
from cli.schemas import codec_for
from common.deadletter import H_REASON, header
from common.events import FulfillmentEvent
from common.settings import Settings, dep_variable_name
from common.topics import Topics
from dep import registry
from tests.conftest import env_for, fresh_settings
from tests.e2e.pipeline import REPO, Stages, da, prepare, replay, wait_until_equal
from tests.kafka_read import read_topic
from tests.oracle import Expected, expected_tables
from tests.services import Services

BAD = {  # id -> (row changes, dead-letter reason GEP must give)
    "9000000001": ({"created_at": "18/01/2020 08:10"}, "bad_timestamp"),
    "9000000002": ({"type": ""}, "missing_field"),
    "9000000003": ({"type": "Welcome!"}, "bad_event_type"),
    "9000000004": ({"fulfillment_id": ""}, "missing_field"),
}


def write_input(path: Path, seed: int) -> tuple[list[dict[str, str]], int]:
    """Returns the valid rows sent (with duplicates) and the line number of the ragged row."""
    rng = random.Random(seed)
    rows = [{k: str(v) for k, v in asdict(r).items()} for r in generate(seed=seed, count=600)]
    # Out of order: shuffle within sliding windows, so late events land among later ones.
    for start in range(0, len(rows), 40):
        window = rows[start : start + 40]
        rng.shuffle(window)
        rows[start : start + 40] = window
    for r in rng.sample(rows, len(rows) // 20):  # duplicates, arriving later
        rows.insert(rng.randrange(rows.index(r), len(rows) + 1), dict(r))
    valid = list(rows)
    template = rows[0]
    for event_id, (changes, _) in BAD.items():
        rows.insert(rng.randrange(len(rows)), {**template, "id": event_id, **changes})
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        ragged_line = 0
        for i, r in enumerate(rows):
            writer.writerow([r[c] for c in COLUMNS])
            if i == len(rows) // 2:
                f.write("315000000,Event::Welcome,15800000\n")  # too few fields
                ragged_line = i + 3  # header is line 1; this row follows data row i (line i+2)
    return valid, ragged_line


def check_tables(settings: Settings, want: Expected) -> list[str]:
    """Differences between the tables and the expectation (empty when equal)."""
    with psycopg.connect(
        settings.database_url_for(DEP), options=f"-c search_path={settings.database_schema}"
    ) as conn:
        ids = {r[0] for r in conn.execute("SELECT event_id FROM events")}
        current = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT fulfillment_id, state, state_start_time FROM current_fulfillments"
            )
        }
        history = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                "SELECT fulfillment_id, state, time_in_state FROM fulfillments_history"
            )
        }
    problems = []
    if ids != want.event_ids:
        problems.append(
            f"events: {len(ids - want.event_ids)} extra, {len(want.event_ids - ids)} missing"
        )
    if current != want.current:
        bad = {
            k for k in current.keys() | want.current.keys() if current.get(k) != want.current.get(k)
        }
        problems.append(f"current_fulfillments differ for {len(bad)}: {sorted(bad)[:3]}")
    if history != want.history:
        bad2 = {
            k for k in history.keys() | want.history.keys() if history.get(k) != want.history.get(k)
        }
        problems.append(f"fulfillments_history differs for {len(bad2)}: {sorted(bad2)[:3]}")
    return problems


def check_topics(settings: Settings, valid: list[dict[str, str]]) -> None:
    """The bad rows were dead-lettered with their reasons, once each, and every valid raw event
    (a duplicate row is a second delivery) made exactly one DE."""
    topics = Topics(settings.namespace)
    dead = read_topic(settings, topics.dead_letter("gep"), expect=len(BAD))
    # The original bytes are kept: they still parse to the row that was sent.
    reasons = {json.loads(m.value())["id"]: header(m.headers(), H_REASON) for m in dead}
    assert reasons == {k: reason for k, (_, reason) in BAD.items()}
    assert len(dead) == len(BAD)
    des = read_topic(settings, topics.sink("demux", "fulfillment.welcome"), expect=len(valid))
    # Despite the faults, the Kafka transactions neither lost nor repeated one.
    sent = Counter(r["id"] for r in valid)
    with closing(codec_for(settings)) as codec:
        got = Counter(FulfillmentEvent.decode(codec, m.value()).event_id for m in des)
    assert got == sent


DEP = "fulfillment-state"
COMMANDS = {
    "gep": ["gep", "run"],
    "demux": ["demux", "run"],
    "dep": ["dep", "run", DEP],
}


def replay_and_check(
    settings: Settings,
    settings_env: dict[str, str],
    tmp_path: Path,
    initial: list[str],
    script: list[tuple[str, str]],
) -> None:
    """Start ``initial`` instances, replay the input while ``script`` runs (one action every
    1.5 s: "kill", "restart", "start" or "stop" an instance), then check every output."""
    env = {**settings_env, "DA_LOG_LEVEL": "INFO"}
    prepare(env)
    csv_path = tmp_path / "events.csv"
    valid, ragged_line = write_input(csv_path, seed=11)
    want = expected_tables(valid)
    assert len(want.history) > 100 and len(want.current) > 100  # the data exercises the rules

    stages = Stages(env, tmp_path, COMMANDS)
    for instance in initial:
        stages.start(instance)
    try:
        status, err = replay(stages, csv_path, 400, script)
        assert status == 1, err  # the ragged row was not sent
        assert f"line {ragged_line}:" in err
        assert f"sent {len(valid) + len(BAD)}," in err

        # A stage killed mid-batch takes the range it had in flight one message at a time on
        # its restart (the crash-loop guard), each one a poll of its own: minutes for a big one.
        problems = wait_until_equal(lambda: check_tables(settings, want), timeout_s=360)
        assert problems == [], stages.tails()
        check_topics(settings, valid)
    finally:
        exits = stages.stop_all()
    assert set(exits.values()) == {0}, (exits, stages.tails())


def test_each_stage_killed_mid_stream_and_restarted(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    replay_and_check(
        settings,
        settings_env,
        tmp_path,
        ["gep-1", "demux-1", "dep-1"],
        [
            ("kill", "gep-1"),
            ("restart", "gep-1"),
            ("kill", "demux-1"),
            ("restart", "demux-1"),
            ("kill", "dep-1"),
            ("restart", "dep-1"),
        ],
    )


def test_scaled_out_stages_rebalance_without_loss_or_duplicates(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    replay_and_check(
        settings,
        settings_env,
        tmp_path,
        ["gep-1", "gep-2", "demux-1", "demux-2", "dep-1", "dep-2"],
        [
            ("start", "gep-3"),
            ("kill", "demux-1"),
            ("stop", "dep-2"),
            ("start", "dep-3"),
            ("stop", "gep-1"),
            ("restart", "demux-1"),
        ],
    )


def _tables(url: str, schema: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
        return {str(r[0]) for r in found}


def test_the_dep_on_a_postgresql_of_its_own(
    services: Services, second_database_url: str, tmp_path: Path
) -> None:
    """fulfillment-state keeps its state on a second PostgreSQL cluster (the other DEPs on the
    shared one): killed mid-stream and restarted, its tables there equal the oracle, none of them
    is in the shared database, and `da fulfillments` reads them from its database."""
    with fresh_settings(services, second_database_url) as every_dep_own:
        own = (dep_variable_name(DEP), second_database_url)
        settings = replace(every_dep_own, dep_database_urls=(own,))
        env = env_for(settings)
        script = [("kill", "dep-1"), ("restart", "dep-1")]
        replay_and_check(settings, env, tmp_path, ["gep-1", "demux-1", "dep-1"], script)
        shared = _tables(settings.database_url, settings.database_schema)
        apart = _tables(second_database_url, settings.database_schema)
        tables = set(registry.get(DEP).tables)
        assert tables <= apart and not tables & shared
        assert {"da_offsets", "usage_metrics"} <= shared  # the other DEPs stay shared
        shown = subprocess.run(
            da("fulfillments", "-o", "json"), env=env, cwd=REPO, capture_output=True, text=True
        )
        assert shown.returncode == 0, shown.stderr
        report = json.loads(shown.stdout)
        with psycopg.connect(second_database_url) as conn:
            stored = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.events").format(
                    sql.Identifier(settings.database_schema)
                )
            ).fetchone()
        assert stored is not None and report["events_stored"] == stored[0] > 0
        assert sum(row["fulfillments"] for row in report["by_state"]) > 100
