"""The CLI finds the local stack from any subfolder of a checkout, as git finds ``.git``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
