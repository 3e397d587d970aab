"""An initial load with real processes: ``da load`` replays a bulk file through GEP, demux and
``fulfillment-state`` while live events keep arriving. Its progress, sampled again and again
while it runs, never calls a stage done before the stage's real offsets (read independently, right
after the claim) have passed its marks, nor ``fulfillment-state`` done before every event of the
load is in its table; stages finish in pipeline order; live events sent during the load reach
the tables within seconds, not behind the whole load.

``DA_TEST_LOAD_EVENTS`` sets the load's size (20,000 in the default suite; ``make load-test`` runs
100,000 and prints the figures docs/reliability.md records)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from cli.load_status import initial_load
from cli.sample.fulfillments import COLUMNS, generate, write_csv
from common import db, lag, loads, stages
from common.settings import Settings
from common.status_read import Reader
from common.topics import Topics
from tests.e2e.pipeline import REPO, Stages, da, prepare

EVENTS = int(os.environ.get("DA_TEST_LOAD_EVENTS", "20000"))
LIVE_MAX_S = 30.0  # "within seconds": generous for a loaded machine, far below a whole load
COMMANDS = {
    "gep": ["gep", "run"],
    "demux": ["demux", "run"],
    "fulfillment-state": ["dep", "run", "fulfillment-state"],
}


def load_file(path: Path) -> list[str]:
    rows = generate(seed=5, count=EVENTS // 6)
    while len(rows) < EVENTS:
        rows += generate(seed=len(rows), count=EVENTS // 6)
    rows = rows[:EVENTS]
    with path.open("w") as f:
        write_csv(rows, f)
    return [r.id for r in rows]


def live_file(path: Path, n: int) -> list[str]:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    ids = [f"99{n:04d}1", f"99{n:04d}2"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, restval="", lineterminator="\n")
        writer.writeheader()
        for eid, etype in zip(ids, ("Event::Welcome", "Event::LmiConnected"), strict=True):
            writer.writerow({"id": eid, "type": etype, "fulfillment_id": f"live-{n}",
                             "created_at": now, "created_by_id": "1"})  # fmt: skip
    return ids


def stored(settings: Settings, live: bool) -> int:
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM events WHERE (fulfillment_id LIKE 'live-%%') = %s", (live,)
        ).fetchone()
    return int(str(row[0])) if row else 0


def arrived(settings: Settings, ids: list[str]) -> bool:
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM events WHERE event_id = ANY(%s)", (ids,)
        ).fetchone()
    return row is not None and int(str(row[0])) == len(ids)


class Live(threading.Thread):
    """One live test taker's two events: sent by ``da emit`` while the load runs, then watched
    for in the table (every 0.1 s, for two minutes at most)."""

    def __init__(self, n: int, folder: Path, env: dict[str, str], settings: Settings) -> None:
        super().__init__(daemon=True)
        self.file, self.env, self.settings = folder / f"live-{n}.csv", env, settings
        self.ids = live_file(self.file, n)
        self.started = time.monotonic()
        self.sent_at: float | None = None  # when emit had the broker's acknowledgement
        self.seen_at: float | None = None  # when both were in the table
        self.error = ""
        self.start()

    def run(self) -> None:
        done = subprocess.run(da("emit", str(self.file)), env=self.env, cwd=REPO,
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            self.error = done.stderr
            return
        self.sent_at = time.monotonic()
        while time.monotonic() < self.sent_at + 120:
            if arrived(self.settings, self.ids):
                self.seen_at = time.monotonic()
                return
            time.sleep(0.1)

    def wait_s(self) -> float | None:
        if self.sent_at is None or self.seen_at is None:
            return None
        return self.seen_at - self.sent_at


def real_positions(settings: Settings, stage_name: str) -> dict[tuple[str, int], int]:
    """The stage's offsets as Kafka and PostgreSQL hold them, read without ``da status``."""
    stage = stages.get(stage_name)
    group = stage.group(settings) or ""
    rows = lag.kafka_lag(settings, group, stage.input_topics(Topics(settings.namespace)))
    if stage.dep is not None:
        with db.connect(settings, autocommit=True) as conn:
            rows = lag.with_stored(rows, lag.stored_offsets(conn, group))
    return {(r.topic, r.partition): r.position or 0 for r in rows}


def test_an_initial_load_completes_stage_by_stage_and_live_events_keep_flowing(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**settings_env, "DA_LOG_LEVEL": "INFO"}
    prepare(env)
    ids = load_file(tmp_path / "load.csv")
    assert len(set(ids)) == EVENTS
    pipeline = Stages(env, tmp_path, COMMANDS)
    for stage in COMMANDS:
        pipeline.start(f"{stage}-1")
    reader = Reader(settings)
    started = time.monotonic()
    loading = subprocess.Popen(
        da("load", str(tmp_path / "load.csv")),
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    samples, first_done = 0, dict[str, float]()
    live: list[Live] = []
    progress = None
    try:
        deadline = started + 900
        while time.monotonic() < deadline:
            progress = initial_load(reader)
            now = time.monotonic()
            if progress is None:
                time.sleep(0.2)
                continue
            samples += 1
            with db.connect(settings, autocommit=True) as conn:
                recorded = loads.latest(conn)
            assert recorded is not None
            for s in progress.stages:
                if not s.done:
                    continue
                first_done.setdefault(s.stage, now)
                real = real_positions(settings, stages.get(s.stage).name)
                early = {k: (real[k], m) for k, m in recorded.marks.items()
                         if k in real and real[k] < m}  # fmt: skip
                assert not early, (s.stage, "called done before its marks", early)
                if s.stage == "fulfillment-state":
                    assert stored(settings, live=False) == EVENTS, "called done early"
            assert progress.done or progress.percent < 100, progress.summary()
            if progress.done:
                break
            # Live traffic: a new test taker every ~4 s while the load runs.
            if not live or (live[-1].sent_at is not None and now - live[-1].started > 4):
                live.append(Live(len(live), tmp_path, env, settings))
            time.sleep(0.5)
        _, err = loading.communicate(timeout=300)
        done_at = time.monotonic()
        for r in live:  # what was sent during the load, until it arrives
            r.join(timeout=240)
    finally:
        reader.close()
        exits = pipeline.stop_all()
    elapsed = time.monotonic() - started
    assert loading.returncode == 0, err.decode()
    assert progress is not None and progress.done, (progress, pipeline.tails())
    assert stored(settings, live=False) == EVENTS
    order = sorted(first_done, key=lambda s: first_done[s])
    assert order.index("gep") < order.index("demux") < order.index("fulfillment-state"), order
    waits = [r.wait_s() for r in live]
    print(f"\ninitial load of {EVENTS:,} events: {elapsed:.1f} s, {samples} progress samples, "
          f"live events in the table {[None if w is None else round(w, 1) for w in waits]} s "
          "after they were sent; "
          f"{err.decode().strip()}")  # fmt: skip
    sent_during = [r for r in live if r.sent_at is not None and r.sent_at < done_at]
    assert sent_during, "no live event was sent while the load ran"
    assert all(w is not None and w <= LIVE_MAX_S for w in waits), [
        (w, r.error) for w, r in zip(waits, live, strict=True)
    ]
    assert set(exits.values()) == {0}, (exits, pipeline.tails())
    # da status's document carries it, with the fields docs/output.md lists.
    shown = subprocess.run(da("status", "--json", "--interval", "1"), env=env, cwd=REPO,
                           capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    doc = json.loads(shown.stdout.splitlines()[-1])["initial_load"]
    assert doc["done"] is True and doc["percent"] == 100 and doc["events"] == EVENTS
    assert set(doc) == documented_load_fields()


def documented_load_fields() -> set[str]:
    text = (REPO / "docs" / "output.md").read_text()
    bullet = text[text.index("- `initial_load`") :].split("\n- ", 1)[0].split("\n\n", 1)[0]
    listed = re.sub(r"\([^()]*\)", "", bullet.split(":", 1)[1])  # not the remarks
    return set(re.findall(r"`([a-z_]+)(?:\[\])?`", listed))
