"""``da web`` in a real headless Chromium (Debian's, driven by Playwright) over real stage
processes: a test taker who has waited 40 minutes heads the board with a ticking timer and an
SLA badge; their ``LaunchStart`` takes them off it and moves the counts without a reload; fifty
viewers cost the statements of one; a SIGSTOPped ``fulfillment-state`` raises the red banner; a
restarted server is reconnected to by the page itself; no request leaves 127.0.0.1 and the
console logs no error. A screenshot of every page is left in the test's folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.pipeline import REPO, Stages, da, prepare

DEP = "fulfillment-state"
COMMANDS = {"gep": ["run", "gep"], "demux": ["run", "demux"], DEP: ["run", DEP], "web": ["web"]}
PAGES = ("fulfillments", "status", "workflow", "learning")
LONG, SHORT = "9000001", "9000002"  # waiting 40 minutes / 3 minutes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _emit(env: dict[str, str], folder: Path, rows: list[tuple[str, str, str, datetime]]) -> None:
    """``da emit`` a proctoring CSV of (event id, type, fulfillment, time) rows."""
    path = folder / f"events-{time.monotonic_ns()}.csv"
    lines = ["id,type,fulfillment_id,created_at,created_by_id,ip_address,user_agent"]
    for eid, kind, fid, at in rows:
        stamp = at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        lines.append(f"{eid},Event::{kind},{fid},{stamp},7,127.0.0.1,test")
    path.write_text("\n".join(lines) + "\n")
    done = subprocess.run(da("emit", str(path)), env=env, cwd=REPO, capture_output=True)
    assert done.returncode == 0, done.stderr


def until(what: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def _stats(base: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(base + "/stats", timeout=10).json()
    return found


def _per_snapshot(base: str, snapshots: int = 4) -> float:
    """Statements the console ran per snapshot over the next few snapshots."""
    first = _stats(base)
    until("snapshots", lambda: _stats(base)["snapshots"] >= first["snapshots"] + snapshots)
    last = _stats(base)
    return float(
        (last["statements"] - first["statements"]) / (last["snapshots"] - first["snapshots"])
    )


@contextmanager
def _viewers(url: str, count: int) -> Iterator[list[int]]:
    """``count`` more viewers of an event stream, each counting the updates it receives."""
    received = [0] * count
    stop = threading.Event()

    def view(i: int) -> None:
        with httpx.stream("GET", url, timeout=30) as answer:
            for line in answer.iter_lines():
                received[i] += line.startswith("data:")
                if stop.is_set():
                    return

    threads = [threading.Thread(target=view, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    try:
        yield received
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)


def test_the_console_in_a_browser(
    settings_env: dict[str, str], chromium: str, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **settings_env,
        "DA_STATE_DIR": str(tmp_path / "state"),
        "DA_WEB_PORT": str(port),
        "DA_CLOCK": "wall",
        "DA_WAIT_SLA_S": "900",
    }
    prepare(env)
    now = datetime.now(UTC)
    _emit(
        env,
        tmp_path,
        [
            ("91", "Welcome", LONG, now - timedelta(minutes=41)),
            ("92", "LmiConnected", LONG, now - timedelta(minutes=40)),
            ("93", "Welcome", SHORT, now - timedelta(minutes=5)),
            ("94", "LmiConnected", SHORT, now - timedelta(minutes=3)),
        ],
    )
    stages = Stages(env, tmp_path, COMMANDS)
    requests: list[str] = []
    errors: list[str] = []
    restarting = threading.Event()

    def on_console(kind: str, text: str) -> None:
        # While the server is away on purpose, the browser logs its refused reconnects.
        if kind == "error" and not (restarting.is_set() and "ERR_CONNECTION_REFUSED" in text):
            errors.append(text)

    try:
        for name in ("gep-1", "demux-1", f"{DEP}-1", "web-1"):
            stages.start(name)
        until("the console", lambda: _answers(base + "/healthz"), timeout_s=120)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True)
            page: Page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: on_console(m.type, m.text))
            page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            page.goto(base + "/fulfillments")

            # The one waiting 40 minutes heads the board, past the SLA, and the timer ticks.
            first = "table.waiting tbody tr:first-child"
            page.wait_for_selector(f"{first} >> text={LONG}", timeout=120_000)
            assert page.locator(f"{first} .badge.sla").count() == 1
            shown = page.inner_text(f"{first} .timer")
            # Waiting since 40 minutes before the emit, however long the stages took since.
            waited = (datetime.now(UTC) - (now - timedelta(minutes=40))).total_seconds() // 60
            assert shown.partition("m")[0] in {str(int(waited) - 1), str(int(waited))}, shown
            until("the timer to tick", lambda: page.inner_text(f"{first} .timer") != shown, 10)
            assert page.locator("table.waiting tbody tr").count() == 2
            page.evaluate("window.notReloaded = true")

            # Fifty viewers cost the statements of one: the snapshot is shared.
            alone = _per_snapshot(base)
            with _viewers(base + "/events/fulfillments", 49) as received:
                until("49 more viewers", lambda: _stats(base)["viewers"]["fulfillments"] == 50)
                crowded = _per_snapshot(base)
                until("every viewer updated", lambda: min(received) >= 2)
            assert crowded == alone, (alone, crowded)

            # LaunchStart moves the test taker off the waiting list, live.
            waiting, launching = _count(page, "WAITING"), _count(page, "LAUNCHING")
            _emit(env, tmp_path, [("95", "LaunchStart", LONG, datetime.now(UTC))])
            page.wait_for_function(
                f"!document.querySelector('table.waiting').innerText.includes('{LONG}')",
                timeout=60_000,
            )
            until("the counts", lambda: _count(page, "WAITING") == waiting - 1)
            assert _count(page, "LAUNCHING") == launching + 1
            assert page.evaluate("window.notReloaded") is True

            # A frozen DEP with input it does not take: the board says it is stale.
            pid = stages.procs[f"{DEP}-1"].pid
            os.kill(pid, signal.SIGSTOP)
            try:
                _emit(env, tmp_path, [("96", "LaunchStart", SHORT, datetime.now(UTC))])
                page.wait_for_selector(".banner", timeout=90_000)
                assert "fulfillment-state" in page.inner_text(".banner")
                page.screenshot(path=str(tmp_path / "fulfillments-stalled.png"), full_page=True)
            finally:
                os.kill(pid, signal.SIGCONT)
            page.wait_for_selector(".banner", state="detached", timeout=90_000)

            # The server restarts; the page reconnects by itself and goes on updating.
            restarting.set()
            stages.stop("web-1")
            page.wait_for_selector("#live.off", timeout=30_000)
            stages.start("web-1")
            page.wait_for_selector("#live:not(.off)", timeout=60_000)
            seq = page.evaluate("document.body.dataset.seq")
            until("an update", lambda: page.evaluate("document.body.dataset.seq") != seq, 30)
            restarting.clear()
            assert page.evaluate("window.notReloaded") is True

            for name in PAGES:
                page.goto(f"{base}/{name}")
                page.wait_for_function("document.body.dataset.seq !== undefined", timeout=60_000)
                page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
            browser.close()
    finally:
        stages.stop_all()
    outside = [u for u in requests if not u.startswith((base + "/", "data:"))]
    assert requests and not outside, outside
    assert not errors, errors
    assert all((tmp_path / f"{name}.png").stat().st_size > 10_000 for name in PAGES)


def _count(page: Any, state: str) -> int:
    return int(page.inner_text(f"[data-state={state}]").replace(",", ""))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
