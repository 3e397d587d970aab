"""``-o json|csv|table`` on every reporting command: the JSON parses and has exactly the fields
docs/output.md documents, times are ISO 8601 in UTC, CSV has the same header, tables have one."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.deadletter import H_DETAIL, H_FAILED_AT, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC
from common.kafka import make_producer
from common.settings import Settings
from common.topics import Topics
from tests.e2e.pipeline import REPO, da, prepare

# As docs/output.md names them -> the arguments run
COMMANDS = {
    "fulfillments": "fulfillments",
    "learning": "learning",
    "parked": "parked",
    "dlq list": "dlq list",
    "dlq show": "dlq show gep",
    "dep list": "dep list",
    "topics list": "topics list",
    "apps list": "apps list",
    "workflow list": "workflow list",
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def documented() -> dict[str, dict[str, set[str] | None]]:
    """command -> top-level field -> the fields of its rows (None: a plain value)."""
    found: dict[str, dict[str, set[str] | None]] = {}
    command = ""
    for line in (REPO / "docs" / "output.md").read_text().splitlines():
        if line.startswith("### da "):
            command = line.removeprefix("### da ")
            found[command] = {}
        elif command and line.startswith("- `"):
            name, _, rest = line[3:].partition("`")
            listed = re.sub(r"\([^)]*\)", "", rest.split(":", 1)[1])  # not the remarks
            fields = set(re.findall(r"`([a-z_]+)`", listed))
            found[command][name.removesuffix("[]")] = fields if name.endswith("[]") else None
    return found


@pytest.fixture
def env(settings: Settings, settings_env: dict[str, str]) -> dict[str, str]:
    prepare(settings_env)
    subprocess.run(da("apps", "add", "shop", "--read"), env=settings_env, cwd=REPO, check=True,
                   capture_output=True)  # fmt: skip
    producer = make_producer(settings)
    headers: list[tuple[str, str | bytes | None]] = [
        (H_REASON, b"bad_timestamp"),
        (H_DETAIL, b"created_at '18/01/2020' is not a time"),
        (H_TOPIC, Topics(settings.namespace).ingest.encode()),
        (H_PARTITION, b"2"),
        (H_OFFSET, b"17"),
        (H_FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]
    producer.produce(Topics(settings.namespace).dead_letter("gep"), b'{"id": 1}', b"k1",
                     headers=headers)  # fmt: skip
    assert producer.flush(30) == 0
    return settings_env


def _run(env: dict[str, str], command: str, fmt: str) -> str:
    proc = subprocess.run(
        da(*command.split(), "-o", fmt), env=env, cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _times(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _times(v)]
    if isinstance(value, list):
        return [t for v in value for t in _times(v)]
    return [value] if isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\d[T ]", value) else []


def test_every_reporting_command_prints_its_documented_json_csv_and_table(
    env: dict[str, str], tmp_path: Path
) -> None:
    docs = documented()
    # `da status` needs running stages: its document is checked by tests/e2e/test_status.py.
    docs.pop("status", None)
    assert set(docs) == set(COMMANDS)
    for command, args in COMMANDS.items():
        doc = json.loads(_run(env, args, "json"))
        assert set(doc) == set(docs[command]), command
        for name, fields in docs[command].items():
            if fields is None:
                continue
            assert all(set(row) == fields for row in doc[name]), (command, name, doc[name][:1])
        for at in _times(doc):
            assert ISO_UTC.match(at), (command, at)
        assert "b'" not in json.dumps(doc) and "None" not in json.dumps(doc)
        tables = [n for n, f in docs[command].items() if f is not None]
        first = next(csv.reader(io.StringIO(_run(env, args, "csv"))))
        assert set(first) == docs[command][tables[0]], command
        assert _run(env, args, "table").strip(), command
    letters = json.loads(_run(env, "dlq show gep", "json"))["letters"]
    assert [(x["reason"], x["source_partition"], x["source_offset"], x["key"], x["value"])
            for x in letters] == [("bad_timestamp", 2, 17, "k1", '{"id": 1}')]  # fmt: skip
    apps = json.loads(_run(env, "apps list", "json"))["apps"]
    assert [(a["name"], a["scopes"], a["state"]) for a in apps] == [
        ("shop", ["ingest", "read"], "active")
    ]
    table = _run(env, "apps list", "table").splitlines()
    assert table[0].split()[:2] == ["application", "scopes"]
