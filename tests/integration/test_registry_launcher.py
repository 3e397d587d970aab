"""The local stack's schema registry: ``da stack status`` reports it, and a restarted registry
still knows every id it handed out (records on the topics carry them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli.stack import registry
from cli.stack.procs import read_int
from common.codec import SCHEMAS_DIR
from common.schema_registry import avro, make_client
from common.settings import Settings
from tests.services import TEST_STACK_DIR, Services

pytestmark = pytest.mark.integration


def test_stack_status_reports_the_registry(schema_registry: str, local_stack: Services) -> None:
    env = {**os.environ, "DA_STATE_DIR": str(TEST_STACK_DIR)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "stack", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"schema-registry: up at {schema_registry}" in done.stdout
    assert f"DA_SCHEMA_REGISTRY_URL={schema_registry}" in (TEST_STACK_DIR / "stack.env").read_text()


def test_ids_survive_a_restart(schema_registry: str, tmp_path: Path) -> None:
    # A registry of its own (the session's keeps serving the other tests meanwhile).
    text = (SCHEMAS_DIR / "de" / "fulfillment" / "v1.avsc").read_text()
    try:
        url = registry.start(tmp_path)
        settings = Settings("-", "-", schema_registry_url=url)
        with make_client(settings) as client:
            # Something first, so the id under test is not simply the first one handed out.
            client.register_schema("warm-up-value", avro('{"type": "string"}'))
            schema_id = client.register_schema("restart-value", avro(text))
        assert registry.stop(tmp_path)
        assert registry.status(tmp_path) is None
        again = registry.start(tmp_path)
        with make_client(Settings("-", "-", schema_registry_url=again)) as client:
            assert client.get_schema(schema_id).schema_str == text
            assert client.lookup_schema("restart-value", avro(text)).schema_id == schema_id
    finally:
        registry.stop(tmp_path)


def test_a_registry_that_dies_starting_is_started_again(tmp_path: Path) -> None:
    registry.spawn(tmp_path)
    first = read_int(tmp_path / "registry" / "registry.pid")
    assert first is not None
    try:
        os.kill(first, signal.SIGKILL)  # dead before it could answer
        url = registry.wait_ready(tmp_path)
        assert registry.answers(url)
        assert read_int(tmp_path / "registry" / "registry.pid") != first
    finally:
        registry.stop(tmp_path)
