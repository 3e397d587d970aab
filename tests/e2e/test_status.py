"""``da status`` against real stage processes: a backlog reads CATCHING_UP with an ETA while
/readyz stays 200; a SIGSTOPped DEP reads STALLED naming its instance and host (exit 2) and its
/healthz stops answering; drained, every partition reads lag 0; killed, the DEP reads STOPPED; a
``da replay`` reads REWIND."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.sample.fulfillments import generate, write_csv
from tests.e2e.pipeline import REPO, Stages, da, prepare, status_rows

DEP = "fulfillment-state"
COMMANDS = {"gep": ["run", "gep"], "demux": ["run", "demux"], DEP: ["run", DEP]}


def status(env: dict[str, str]) -> tuple[int, dict[str, dict[str, Any]]]:
    code, err, rows = status_rows(env)
    assert rows, err
    return code, rows


def until(what: str, check: Callable[[], bool], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def probe(url: str, timeout_s: float = 3.0) -> int | None:
    """The HTTP status, or None when nothing answered in time (what a prober counts as failed)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (TimeoutError, urllib.error.URLError):
        return None


def metrics_port(log: Path) -> int:
    pattern = r"/readyz on http://[\d.]+:(\d+)"
    until("the metrics port", lambda: bool(re.findall(pattern, _text(log))))
    return int(re.findall(pattern, _text(log))[-1])


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_status_verdicts_on_real_processes(settings_env: dict[str, str], tmp_path: Path) -> None:
    env = {**settings_env, "DA_METRICS_PORT": "-1", "DA_STATE_DIR": str(tmp_path / "state")}
    prepare(env)
    sample = tmp_path / "events.csv"
    with sample.open("w") as out:
        write_csv(generate(seed=11, count=4000), out)
    emitted = subprocess.run(
        da("emit", str(sample), "--rate", "100000"), env=env, cwd=REPO, capture_output=True
    )
    assert emitted.returncode == 0, emitted.stderr
    stages = Stages(env, tmp_path, COMMANDS)
    try:
        stages.start("gep-1")
        stages.start("demux-1")
        until("demux to drain", lambda: status(env)[1]["demux"]["outstanding"] == 0)
        # One event per database transaction keeps the DEP behind long enough to watch it.
        stages.env = {**env, "DA_BATCH_SIZE": "1"}
        stages.start(f"{DEP}-1")
        port = metrics_port(tmp_path / f"{DEP}-1.log")
        seen: dict[str, Any] = {}

        def catching_up() -> bool:
            seen.update(status(env)[1][DEP])
            return bool(seen["verdict"] == "CATCHING_UP" and seen["outstanding"] > 0)

        # A backlog big enough that a fast machine cannot drain it between two samples.
        until("CATCHING_UP", catching_up, timeout_s=300)
        assert seen["eta_s"] is not None and seen["eta_s"] > 0 and seen["rate_per_s"] > 0
        base = f"http://127.0.0.1:{port}"
        assert probe(base + "/readyz") == 200  # a backlog is no reason to stop sending traffic
        assert probe(base + "/healthz") == 200

        pid = stages.procs[f"{DEP}-1"].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            code, rows = status(env)
            dep = rows[DEP]
            assert dep["verdict"] == "STALLED", dep
            assert code == 2
            assert f"{DEP}-1:{pid}" in dep["next"] and "127.0.0.1" in dep["next"]
            assert probe(base + "/healthz", timeout_s=2) is None  # a frozen loop answers nothing
        finally:
            os.kill(pid, signal.SIGCONT)

        def drained() -> bool:
            rows = status(env)[1]
            return all(rows[s]["verdict"] == "OK" for s in COMMANDS)

        until("every stage to drain", drained, timeout_s=600)
        rows = status(env)[1]
        for name in COMMANDS:
            assert rows[name]["partitions"] and all(p["lag"] == 0 for p in rows[name]["partitions"])
            assert all(p["committed"] == p["end"] for p in rows[name]["partitions"]), rows[name]

        stages.kill(f"{DEP}-1")
        until("STOPPED", lambda: status(env)[1][DEP]["verdict"] == "STOPPED", timeout_s=120)
        replayed = subprocess.run(
            da("replay", DEP, "--from", "2000-01-01T00:00:00Z", "--yes"),
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert replayed.returncode == 0, replayed.stderr
        code, rows = status(env)
        assert rows[DEP]["verdict"] == "REWIND" and "da run" in rows[DEP]["next"]
    finally:
        stages.stop_all()
