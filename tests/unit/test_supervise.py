"""``da up``'s supervisor: every registered stage, restarts with back-off, one line per restart,
and a clean stop. The children here are tiny Python processes, not stages."""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from pathlib import Path

from cli.supervise import Supervisor, instance_names, up_dir
from common import stages


def test_every_registered_stage_runs_with_its_instances() -> None:
    names = instance_names(2)
    for stage in stages.STAGES:
        count = sum(1 for _, s, _ in names if s == stage.short_name)
        assert count == (2 if stage.consumes else 1), stage.name
    assert len({n for n, _, _ in names}) == len(names)


def test_an_exiting_instance_is_restarted_with_back_off_and_stopped_on_request(
    tmp_path: Path,
) -> None:
    up_dir(tmp_path).mkdir(parents=True)
    log = io.StringIO()
    quick = "import sys; sys.exit(4)"
    steady = "import time; time.sleep(600)"

    def command(stage: str) -> list[str]:
        return [sys.executable, "-c", quick if stage == "gep" else steady]

    sup = Supervisor(tmp_path, 1, log, command)
    runner = threading.Thread(target=sup.run)
    runner.start()
    deadline = time.monotonic() + 30
    while log.getvalue().count("gep-0 exited") < 3:
        assert time.monotonic() < deadline, log.getvalue()
        time.sleep(0.05)
    sup.stop.set()
    runner.join(60)
    lines = log.getvalue().splitlines()
    restarts = [line for line in lines if "gep-0 exited" in line]
    delays = [int(m[1]) for m in (re.search(r"in (\d+)s$", r) for r in restarts) if m]
    assert "status 4" in restarts[0] and delays[:3] == [1, 2, 4]
    assert not any("demux-0 exited" in line for line in lines)
    assert any(line.endswith("stopped demux-0 (status -15)") for line in lines)
    assert lines[-1].endswith("supervisor stopped")
    assert (up_dir(tmp_path) / "gep-0.log").exists()


def test_the_console_is_one_more_child_only_when_asked(tmp_path: Path) -> None:
    log = io.StringIO()
    plain = Supervisor(tmp_path, 1, log)
    assert all(c.stage != "web" for c in plain.children)
    with_web = Supervisor(tmp_path, 1, log, web=True)
    (web,) = [c for c in with_web.children if c.stage == "web"]
    assert web.name == "web-0" and "DA_METRICS_PORT" not in web.env
    assert with_web.command(web.stage)[-1] == "web"
    assert with_web.command("gep")[-2:] == ["run", "gep"]
