"""The CLI finds the local stack from any subfolder of a checkout, as git finds ``.git``, and
will not stop it under connected stages."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.stack.control import stack_status
from common.kafka import ensure_topics, make_consumer
from common.settings import Settings
from tests.services import TEST_STACK_DIR, Services


def _status(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DA_")}
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(repo)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "stack", "status"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_stack_status_from_a_subfolder_sees_the_checkout_stack(
    services: Services, tmp_path: Path
) -> None:
    if services.origin != "launcher":
        pytest.skip(f"the services come from the {services.origin}, not a local stack")
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".da").symlink_to(TEST_STACK_DIR)  # the checkout's stack is the test stack
    deep = checkout / "dep" / "migrations"
    deep.mkdir(parents=True)
    found = _status(deep)
    assert found.returncode == 0, found.stderr
    assert f"kafka: up at {services.kafka_bootstrap_servers}" in found.stdout


def test_with_no_stack_status_names_the_checkout_state_dir(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "docs").mkdir()
    down = _status(checkout / "docs")
    assert down.returncode == 3
    assert f"state dir {checkout / '.da'}" in down.stderr


def test_stack_down_is_refused_while_a_stage_is_connected(
    services: Services, settings: Settings
) -> None:
    if services.origin != "launcher":
        pytest.skip(f"the services come from the {services.origin}, not a local stack")
    topic = f"{settings.namespace}.busy"
    ensure_topics(settings, [topic], partitions=1)
    group = settings.group_id("busy")
    consumer = make_consumer(settings, group)
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 60
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.5)
        assert consumer.assignment()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DA_")}
        env["DA_STATE_DIR"] = str(TEST_STACK_DIR)
        refused = subprocess.run(
            [sys.executable, "-m", "cli.main", "stack", "down"],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        consumer.close()
    assert refused.returncode == 2, refused.stderr
    assert f"{group} (1 consumer)" in refused.stderr
    assert "--force" in refused.stderr
    assert stack_status(TEST_STACK_DIR).all_up
