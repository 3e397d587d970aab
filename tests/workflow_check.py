"""The OUS workflow's outputs checked against ``tests.ous_oracle``, for every test that runs the
state service (``tests/e2e/test_workflow_pipeline.py``, the chaos run): the commands as logged on
its input, and its tables compared with the oracle's.
"""

from __future__ import annotations

from contextlib import closing

import psycopg

from cli.schemas import codec_for
from common.events import SystemEvent
from common.settings import Settings
from common.topics import Topics
from tests.kafka_read import read_topic
from tests.ous_oracle import Cmd, Expected


def logged_commands(
    settings: Settings, expect: int = 0, skip_key: bytes | None = None
) -> list[Cmd]:
    """The commands on the state service's input, in log order (per partition, so per OUS):
    read until ``expect`` are there; ``skip_key``: the key of messages that are not commands (a
    run's poison)."""
    topic = Topics(settings.namespace).sink_bucket("demux", "ous")
    msgs = read_topic(settings, topic, expect=expect, timeout_s=max(90.0, expect / 500))
    msgs = [m for m in msgs if skip_key is None or m.key() != skip_key]
    msgs.sort(key=lambda m: (m.partition(), m.offset()))
    out = []
    with closing(codec_for(settings)) as codec:
        decoded = [SystemEvent.decode(codec, m.value()) for m in msgs]
    for e in decoded:
        a = e.attributes
        out.append(
            Cmd(
                e.event_id,
                e.entity_id,
                a["operation"],
                a.get("value"),
                e.occurred_at,
                int(a["hops"]),
                a.get("reply_to"),
            )
        )
    return out


def check_tables(settings: Settings, want: Expected) -> list[str]:
    with psycopg.connect(
        settings.database_url, options=f"-c search_path={settings.database_schema}"
    ) as conn:
        status = {
            r[0]: tuple(r[1:])
            for r in conn.execute(
                "SELECT ous_uid, state, state_since, substate, executive, flags, updated_at "
                "FROM ous_status"
            )
        }
        history = sorted(
            conn.execute(
                "SELECT ous_uid, state, entered_at, left_at, seconds FROM ous_state_history"
            ).fetchall()
        )
        rejections: dict[str, str] = dict(
            conn.execute("SELECT command_id, reason FROM ous_rejections").fetchall()
        )
        (pending,) = conn.execute("SELECT count(*) FROM da_outbox").fetchone() or (0,)
    problems = []
    if status != want.status:
        bad = sorted(
            k for k in status.keys() | want.status.keys() if status.get(k) != want.status.get(k)
        )
        problems.append(
            f"ous_status differs for {len(bad)}: "
            f"{[(k, status.get(k), want.status.get(k)) for k in bad[:2]]}"
        )
    if history != sorted(want.history):
        problems.append(f"ous_state_history: {len(history)} rows, {len(want.history)} expected")
    if rejections != want.rejections:
        problems.append(
            f"ous_rejections differ: {set(rejections.items()) ^ set(want.rejections.items())}"
        )
    if pending:
        problems.append(f"{pending} outbox rows not relayed yet")
    return problems
