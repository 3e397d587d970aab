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
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import psycopg

from cli.sample import COLUMNS, generate
from common.codec import Codec
from common.deadletter import H_REASON, header
from common.events import FulfillmentEvent
from common.settings import Settings
from common.topics import Topics
from tests.kafka_read import read_topic
from tests.oracle import Expected, expected_tables

REPO = Path(__file__).resolve().parents[2]
BAD = {  # id -> (row changes, dead-letter reason GEP must give)
    "9000000001": ({"created_at": "18/01/2020 08:10"}, "bad_timestamp"),
    "9000000002": ({"type": ""}, "missing_field"),
    "9000000003": ({"type": "Welcome!"}, "bad_event_type"),
    "9000000004": ({"fulfillment_id": ""}, "missing_field"),
}


def da(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


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
        settings.database_url, options=f"-c search_path={settings.database_schema}"
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


COMMANDS = {
    "gep": da("gep", "run"),
    "demux": da("demux", "run"),
    "dep": da("dep", "run", "fulfillment-state"),
}


STOP_TIMED_OUT = -1000  # the exit "code" of an instance that ignored SIGTERM for 60 s


class Stages:
    """The stage processes of one test; an instance is ``<stage>-<n>`` with its own instance id
    (the suffix of its transactional id), as distinct replicas would have."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.exits: dict[str, int] = {}

    def start(self, instance: str) -> None:
        self.started[instance] = time.monotonic()
        stage = instance.split("-")[0]
        with (self.logs / f"{instance}.log").open("ab") as log:
            self.procs[instance] = subprocess.Popen(
                COMMANDS[stage],
                env={**self.env, "DA_INSTANCE_ID": instance},
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self, instance: str) -> None:
        self.procs[instance].send_signal(signal.SIGKILL)
        self.procs[instance].wait()

    def _settled(self, instance: str) -> None:
        # A process signalled before its interpreter has started and installed its handlers
        # dies of the signal having done nothing; an orchestrator's stop is never that quick.
        time.sleep(max(0.0, self.started[instance] + 3.0 - time.monotonic()))

    def stop(self, instance: str) -> None:
        """SIGTERM: finish the batch, commit, leave the group, exit 0."""
        self._settled(instance)
        self.procs[instance].send_signal(signal.SIGTERM)
        self._reap(instance)

    def stop_all(self) -> dict[str, int]:
        for instance in list(self.procs):
            self._settled(instance)
            self.procs[instance].send_signal(signal.SIGTERM)
        for instance in list(self.procs):
            self._reap(instance)
        return self.exits

    def _reap(self, instance: str) -> None:
        proc = self.procs.pop(instance)
        try:
            self.exits[instance] = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # deaf to SIGTERM: a failure, recorded, not left over
            proc.kill()
            proc.wait()
            self.exits[instance] = STOP_TIMED_OUT

    def tails(self) -> dict[str, str]:
        return {p.stem: p.read_text()[-1500:] for p in self.logs.glob("*.log")}


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
    subprocess.run(da("topics", "ensure"), env=env, cwd=REPO, check=True, capture_output=True)
    subprocess.run(da("db", "migrate"), env=env, cwd=REPO, check=True, capture_output=True)
    csv_path = tmp_path / "events.csv"
    valid, ragged_line = write_input(csv_path, seed=11)
    want = expected_tables(valid)
    assert len(want.history) > 100 and len(want.current) > 100  # the data exercises the rules

    stages = Stages(env, tmp_path)
    for instance in initial:
        stages.start(instance)
    try:
        emit = subprocess.Popen(
            da("emit", str(csv_path), "--rate", "400"),
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for action, instance in script:
            time.sleep(1.5)
            if action == "kill":
                stages.kill(instance)
            elif action == "stop":
                stages.stop(instance)
            else:  # "start" a new instance or "restart" a killed one
                stages.start(instance)
        _, err = emit.communicate(timeout=120)
        assert emit.returncode == 1, err  # the ragged row was not sent
        assert f"line {ragged_line}:".encode() in err
        assert f"sent {len(valid) + len(BAD)},".encode() in err

        deadline = time.monotonic() + 120
        while (problems := check_tables(settings, want)) and time.monotonic() < deadline:
            time.sleep(2)
        assert problems == [], stages.tails()

        topics = Topics(settings.namespace)
        dead = read_topic(settings, topics.dead_letter("gep"), expect=len(BAD))
        # The original bytes are kept: they still parse to the row that was sent.
        reasons = {json.loads(m.value())["id"]: header(m.headers(), H_REASON) for m in dead}
        assert reasons == {k: reason for k, (_, reason) in BAD.items()}
        des = read_topic(settings, topics.sink("demux", "fulfillment.welcome"), expect=len(valid))
        # Every valid raw event (a duplicate row is a second delivery) made exactly one DE,
        # despite the faults: the Kafka transactions neither lost nor repeated one.
        codec = Codec()
        sent = Counter(r["id"] for r in valid)
        assert Counter(FulfillmentEvent.decode(codec, m.value()).event_id for m in des) == sent
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
