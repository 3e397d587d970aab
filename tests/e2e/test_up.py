"""``da up`` runs every registered stage supervised; restarting the broker under it, then emitting,
every stage resumes by itself (a stage left alive but out of its group fails its health and
exits for the supervisor to restart it); ``da down`` stops them all."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from cli.sample.fulfillments import generate, write_csv
from cli.stack import kafka
from common import stages
from tests.e2e.pipeline import REPO, da, status_rows
from tests.services import TEST_STACK_DIR, Services


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return status_rows(env)[2]


def _all_ok(env: dict[str, str], fulfillment_events: int) -> bool:
    rows = _status(env)
    names = [s.short_name for s in stages.consuming()]
    if not rows or any(rows[n]["verdict"] != "OK" for n in names):
        return False
    return bool(rows["fulfillment-state"]["processed"] >= fulfillment_events)


def _emit(env: dict[str, str], path: Path, seed: int) -> int:
    rows = generate(seed=seed, count=150)
    with path.open("w") as out:
        write_csv(rows, out)
    # Right after a broker restart its partitions may not take writes yet: `da emit` then
    # reports failed deliveries; sending the file again is harmless (the DEP dedupes by id).
    for _ in range(10):
        done = subprocess.run(da("emit", str(path), "--rate", "100000"), env=env, cwd=REPO)
        if done.returncode == 0:
            return len(rows)
        time.sleep(5)
    raise AssertionError(f"da emit {path} kept failing")


def _wait(what: str, check: Any, timeout_s: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"timed out waiting for {what}"
        time.sleep(2)
    return time.monotonic() - started


def _check_metrics(promtool: str, url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read()
    assert b"da_" in text or b"collector" in text, url
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert checked.returncode == 0, (url, checked.stdout, checked.stderr)


def test_every_stage_resumes_after_a_broker_restart_under_da_up(
    local_stack: Services, settings_env: dict[str, str], tmp_path: Path, promtool: str
) -> None:
    env = {
        **settings_env,
        "DA_STATE_DIR": str(tmp_path / "state"),
        "DA_COLLECTOR_PORT": str(_free_port()),
        # Bounds short enough that a stage stuck out of its group is restarted within the test.
        "DA_UNASSIGNED_MAX_S": "20",
        "DA_UNHEALTHY_EXIT_S": "15",
    }
    up = subprocess.run(da("up"), env=env, cwd=REPO, capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    log = tmp_path / "state" / "up" / "supervisor.log"
    try:
        sent = _emit(env, tmp_path / "one.csv", 1)
        _wait("the pipeline to drain", lambda: _all_ok(env, sent), 300)
        # Every stage's /metrics passes promtool (each logs the port it bound).
        for stage in stages.consuming():
            text = (tmp_path / "state" / "up" / f"{stage.short_name}-0.log").read_text()
            port = re.findall(r"/readyz on http://[\d.]+:(\d+)", text)[-1]
            _check_metrics(promtool, f"http://127.0.0.1:{port}/metrics")
        _check_metrics(promtool, f"http://127.0.0.1:{env['DA_COLLECTOR_PORT']}/metrics")

        before = kafka.status(TEST_STACK_DIR)
        kafka.stop(TEST_STACK_DIR)
        time.sleep(3)
        # A broker holding many test topics can take minutes to load them on a busy machine.
        assert kafka.start(TEST_STACK_DIR, timeout_s=600) == before
        sent += _emit(env, tmp_path / "two.csv", 2)
        took = _wait("every stage to resume", lambda: _all_ok(env, sent), 300)
        print(f"every stage resumed {took:.0f}s after the emit; supervisor log:\n{log.read_text()}")
    finally:
        down = subprocess.run(da("down"), env=env, cwd=REPO, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    lines = log.read_text().splitlines()
    assert lines[-1].endswith("supervisor stopped")
    started = [line for line in lines if " started " in line]
    assert len(started) >= len(stages.STAGES)
