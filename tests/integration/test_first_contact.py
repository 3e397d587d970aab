"""First contact: the README's first commands run as written in a plain shell (``da`` on the
PATH only once the venv is activated) at the checkout's top and in a subfolder; the CLI finds the
local stack from any subfolder of a checkout, as git finds ``.git``, and will not stop it under
connected stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cli.stack.control import stack_status
from common import stages
from common.kafka import ensure_topics, make_consumer
from common.settings import Settings
from tests.e2e.pipeline import REPO, prepare
from tests.services import TEST_STACK_DIR, Services

FIRST_CONTACT = "<!-- first contact:"


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
    local_stack: Services, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".da").symlink_to(TEST_STACK_DIR)  # the checkout's stack is the test stack
    deep = checkout / "dep" / "migrations"
    deep.mkdir(parents=True)
    found = _status(deep)
    assert found.returncode == 0, found.stderr
    assert f"kafka: up at {local_stack.kafka_bootstrap_servers}" in found.stdout


def test_with_no_stack_status_names_the_checkout_state_dir(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "docs").mkdir()
    down = _status(checkout / "docs")
    assert down.returncode == 3
    assert f"state dir {checkout / '.da'}" in down.stderr


def test_stack_down_is_refused_while_a_stage_is_connected(
    local_stack: Services, settings: Settings
) -> None:
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


def first_contact() -> list[str]:
    """The command lines of the README's first-contact block, without their comments."""
    readme = (REPO / "README.md").read_text()
    block = readme.split(FIRST_CONTACT, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split(" #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def _plain_shell(cwd: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_readme_s_first_commands_run_as_written(
    services: Services, settings_env: dict[str, str], tmp_path: Path
) -> None:
    lines = first_contact()
    setup = [line for line in lines if line.startswith("source ")]
    commands = [line for line in lines if line.startswith("da ")]
    assert setup == ["source .venv/bin/activate"]
    assert {"da status", "da fulfillments -o json"} <= set(commands)
    assert "make demo-stop" in lines  # not run here: it would stop the test stack
    prepare(settings_env)  # what `make demo` did: the topics and tables
    # A checkout whose venv and stack are this one's, in a shell that has never seen the venv.
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / "docs").mkdir()
    venv = Path(sys.prefix)
    assert (venv / "bin" / "activate").is_file(), f"the tests run in a venv ({venv} is not one)"
    (checkout / ".venv").symlink_to(venv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DA_") and k != "VIRTUAL_ENV"}
    venv_bin = (venv / "bin").resolve()
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if p and Path(p).resolve() != venv_bin
    )
    unseen = _plain_shell(checkout, "command -v da", env).stdout
    assert str(venv_bin) not in unseen  # the venv's da is unknown to the shell, as on a new machine
    # The test's own topics and tables; the addresses come from the checkout's stack file when
    # the services are the local stack, as after `make demo`.
    env |= {k: settings_env[k] for k in ("DA_NAMESPACE", "DA_DATABASE_SCHEMA")}
    if services.origin == "launcher":
        (checkout / ".da").symlink_to(TEST_STACK_DIR)
    else:
        env |= {k: v for k, v in settings_env.items() if k.startswith("DA_")}
    for folder in (checkout, checkout / "docs"):
        for command in commands:
            # Each command after the setup lines, in a fresh shell, so their outputs stay apart.
            script = "\n".join([*setup, f"cd {folder}", command])
            done = _plain_shell(checkout, script, env)
            where = f"`{command}` in {folder.relative_to(checkout.parent)}"
            assert "command not found" not in done.stderr, where
            assert "Traceback" not in done.stderr, f"{where}: {done.stderr}"
            # `da status` exits with its verdict: no stage of this test runs, so STOPPED (2).
            expected = 2 if command.startswith("da status") else 0
            assert done.returncode == expected, f"{where}: {done.stderr}"
            assert done.stdout.strip(), where
            if "-o json" in command:
                json.loads(done.stdout)
            if command == "da status":
                for stage in stages.consuming():
                    assert stage.short_name in done.stdout, where
