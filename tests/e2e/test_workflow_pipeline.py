"""The OUS workflow end to end: GEP, demux, ous-lifecycle and both actors as processes on real
Kafka and PostgreSQL, commands in both body shapes with duplicates, illegal moves and refused
ones, and the state service and the dispatcher killed (SIGKILL) mid-stream and restarted.

The tables, the answers and the broadcasts must equal ``tests/ous_oracle.py`` applied to the
commands in the order they were logged (the actors' commands interleave with the outside ones
as timing decides, so the log, not the file, is the order of record): every answer exactly once
per command message, every broadcast exactly once per accepted move, in per-OUS order.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg

from cli.sample import write_jsonl
from cli.sample.workflow import generate
from cli.schemas import codec_for
from common.deadletter import H_REASON, header
from common.events import SystemEvent
from common.settings import Settings
from common.topics import Topics
from tests.e2e.pipeline import REPO, Stages, da, prepare, replay, wait_until_equal
from tests.kafka_read import read_topic
from tests.ous_oracle import Cmd, Expected, expected
from tests.workflow_check import check_tables, logged_commands

COMMANDS = {
    "gep": ["gep", "run"],
    "demux": ["demux", "run"],
    "lifecycle": ["dep", "run", "ous-lifecycle"],
    "dispatcher": ["dep", "run", "ous-dispatcher"],
    "driver": ["dep", "run", "ous-pipeline-driver"],
}


def test_workflow_with_actors_and_a_killed_state_service(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**settings_env, "DA_LOG_LEVEL": "INFO", "DA_BATCH_SIZE": "20"}
    prepare(env)
    topics = Topics(settings.namespace)
    reply_topic = topics.reply_prefix + "sample"
    assert reply_topic in topics.replies  # created by `da topics ensure`
    records = generate(seed=5, count=30, reply_to=reply_topic)
    uid = records[0]["key"]
    refused = {
        "id": "refused-1",
        "operation": "set-flag",
        "ousUID": uid,
        "value": "x=1",
        "reply_to": topics.canonical,
    }
    records.insert(len(records) // 2, {"format": "xtss", "key": uid, "value": refused})
    path = tmp_path / "commands.jsonl"
    with path.open("w") as f:
        write_jsonl(records, f)
    shapes = Counter("text" if "text" in r else "json" for r in records)
    assert shapes["text"] > 10 and shapes["json"] > 50

    stages = Stages(env, tmp_path, COMMANDS)
    for instance in ("gep-1", "demux-1", "lifecycle-1", "dispatcher-1", "driver-1"):
        stages.start(instance)
    try:
        status, err = replay(
            stages,
            path,
            40,
            [
                ("kill", "lifecycle-1"),
                ("restart", "lifecycle-1"),
                ("kill", "dispatcher-1"),
                ("restart", "dispatcher-1"),
            ],
            pause_s=2.0,
        )
        assert status == 0, err
        state: dict[str, Any] = {}

        def check() -> list[str]:
            state["cmds"] = logged_commands(settings)
            state["want"] = expected(state["cmds"], topics.replies, settings.max_hops)
            # The tables can equal what was logged while an actor is still restarting and has
            # yet to add its commands: the actors' work is awaited too.
            return check_tables(settings, state["want"]) + _actors_behind(
                state["cmds"], state["want"]
            )

        problems = wait_until_equal(check, timeout_s=180)
        assert problems == [], stages.tails()
        cmds: list[Cmd] = state["cmds"]
        want: Expected = state["want"]
        _check_actors(cmds, want)
        print(  # the figures of the run, for the report (pytest -s)
            f"{len(cmds)} commands logged, {len(want.replies)} answers, "
            f"{sum(map(len, want.broadcasts.values()))} broadcasts, {len(want.history)} visits, "
            f"{len(want.rejections)} refused, repeats {len(cmds) - len({c.id for c in cmds})}"
        )
        assert len(want.history) > 30 and len(want.replies) > 60
        assert len(cmds) > len({c.id for c in cmds})  # some ids came twice
        assert want.rejections["refused-1"] == "reply_to_not_allowed"
        assert {"illegal_transition", "unknown_state", "unknown_ous"} <= set(
            want.rejections.values()
        )

        replies = read_topic(settings, reply_topic, expect=len(want.replies))
        got = Counter((m.key().decode(), m.value().decode()) for m in replies)
        assert got == Counter((i, json.dumps(b, sort_keys=True)) for i, b in want.replies)

        casts = read_topic(settings, topics.sink_bucket("dep", "ous"), expect=0)
        casts.sort(key=lambda m: (m.partition(), m.offset()))
        per_ous: dict[str, list[str]] = {}
        processes: Counter[str] = Counter()
        with closing(codec_for(settings)) as codec:
            for m in casts:
                selector = header(m.headers(), "da-selector") or ""
                if selector.startswith("pipeline.process."):
                    processes[SystemEvent.decode(codec, m.value()).event_id] += 1
                else:
                    per_ous.setdefault(m.key().decode(), []).append(selector)
        assert per_ous == {k: v for k, v in want.broadcasts.items() if v}
        assert set(processes.values()) == {1}  # each processing request once

        _check_cli(env, settings)

        dead = read_topic(settings, topics.dead_letter("gep"), expect=3)
        assert sorted(header(m.headers(), H_REASON) or "" for m in dead) == [
            "bad_ous_uid",
            "bad_ous_uid",
            "unknown_operation",
        ]
    finally:
        exits = stages.stop_all()
    assert set(exits.values()) == {0}, (exits, stages.tails())
    # Nobody is there to answer now: a clear message and status 1, not a hang.
    late = run_da(env, "workflow", "set-state", uid, "Reviewing", "--timeout", "3")
    assert late.returncode == 1 and "no answer" in late.stderr, late


def run_da(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        da(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


def _check_cli(env: dict[str, str], settings: Settings) -> None:
    """``da workflow`` against the running pipeline: commands wait for their answers."""
    with psycopg.connect(
        settings.database_url, options=f"-c search_path={settings.database_schema}"
    ) as conn:
        row = conn.execute(
            "SELECT ous_uid FROM ous_status WHERE state = 'ReadyForReview' ORDER BY ous_uid"
        ).fetchone()
    assert row is not None
    uid = str(row[0])
    ok = run_da(env, "workflow", "set-state", uid, "Reviewing")
    assert ok.returncode == 0 and "200 ok, now Reviewing" in ok.stdout, ok
    refused = run_da(env, "workflow", "set-state", uid, "Delivered")
    assert refused.returncode == 2 and "409 illegal_transition" in refused.stdout, refused
    got = run_da(env, "workflow", "get", uid)
    assert got.returncode == 0 and "Reviewing since" in got.stdout, got
    listed = run_da(env, "workflow", "list", "--state", "Reviewing")
    assert uid in listed.stdout, listed
    as_json = run_da(env, "workflow", "list", "--state", "Reviewing", "-o", "json")
    assert uid in [o["ous_uid"] for o in json.loads(as_json.stdout)["ous"]], as_json
    hist = run_da(env, "workflow", "history", uid)
    assert "ReadyForReview\t" in hist.stdout and "refused" in hist.stdout, hist
    sim = run_da(env, "workflow", "simulate", "--ous", "6", "--seed", "3", "--wait", "120")
    assert sim.returncode == 0 and "longest waiting" in sim.stdout, sim
    assert "still waiting" not in sim.stderr, sim


def _actors_behind(cmds: list[Cmd], want: Expected) -> list[str]:
    """What the actors have yet to send: a dispatch per visit of ReadyForProcessing with a
    recipe, and a start and an end of each dispatched visit from its pipeline driver."""
    ids = {c.id for c in cmds}
    behind = [f"visit {v} not dispatched" for v in sorted(want.dispatches - _dispatched(ids))]
    for visit in sorted(_dispatched(ids)):
        behind += [
            f"visit {visit} not driven to its {end}"
            for end in ("start", "end")
            if f"drive:{visit}:{end}" not in ids
        ]
    return behind


def _dispatched(ids: set[str]) -> set[str]:
    return {i.removeprefix("dispatch:") for i in ids if i.startswith("dispatch:")}


def _check_actors(cmds: list[Cmd], want: Expected) -> None:
    """The actors did their part: every visit of ReadyForProcessing with a recipe was dispatched
    once and driven (Processing, then a result), and no actor loop reached the hop limit."""
    ids = Counter(c.id for c in cmds)
    assert want.dispatches, "no visit of ReadyForProcessing had a recipe"
    assert _dispatched(set(ids)) == want.dispatches
    assert _actors_behind(cmds, want) == []
    assert "hop_limit" not in want.rejections.values()
    reached = {s for sel in want.broadcasts.values() for s in sel}
    assert "state.change.Processing" in reached
    assert reached & {"state.change.ReadyForReview", "state.change.ProcessingProblem"}
