"""Anyone can subscribe: consumers written only with stock libraries, in Python and in Node, read
a DE topic the running pipeline (GEP and demux as processes, the registry framing on) produced,
and get the documented records: the same ones the pipeline's own codec reads."""

from __future__ import annotations

import ast
import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cli.sample.fulfillments import COLUMNS, generate
from cli.schemas import codec_for
from common.events import FulfillmentEvent
from common.settings import Settings
from common.topics import Topics
from tests.conftest import env_for, fresh_settings
from tests.e2e.pipeline import REPO, Stages, da, prepare
from tests.kafka_read import read_topic
from tests.services import Services

EXAMPLES = REPO / "examples" / "subscribers"
PYTHON_SUBSCRIBER = EXAMPLES / "python" / "subscribe.py"
NODE_DIR = EXAMPLES / "node"
FULFILLMENTS = 12
# What a DE carries for an outsider to check (docs/schemas.md, schemas/de/fulfillment/v1.avsc).
Fields = tuple[str, str, str, str, str, int, tuple[str, ...]]


def _fields(key: str, v: dict[str, Any], occurred_at_us: int) -> Fields:
    lineage = v["lineage"]
    return (
        key,
        v["event_id"],
        v["name"],
        v["fulfillment_id"],
        v["event_type"],
        occurred_at_us,
        (lineage["root_event_id"], *lineage["stages"]),
    )


@pytest.fixture(scope="module")
def pipeline_output(
    schema_registry: str, services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str, set[Fields]]]:
    """GEP and demux as processes over sample fulfillment events, once for every subscriber:
    the DE topic and its records as the pipeline's own codec reads them."""
    with fresh_settings(services) as settings:
        yield from _run_pipeline(settings, tmp_path_factory.mktemp("pipeline"))


def _run_pipeline(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[Settings, str, set[Fields]]]:
    env = {**env_for(settings), "DA_LOG_LEVEL": "INFO"}
    prepare(env)
    rows = [{k: str(v) for k, v in asdict(r).items()} for r in generate(seed=3, count=FULFILLMENTS)]
    csv_path = tmp_path / "events.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([r[c] for c in COLUMNS] for r in rows)
    stages = Stages(env, tmp_path, {"gep": ["gep", "run"], "demux": ["demux", "run"]})
    stages.start("gep-1")
    stages.start("demux-1")
    try:
        sent = subprocess.run(
            da("emit", str(csv_path)), env=env, cwd=REPO, capture_output=True, timeout=300
        )
        assert sent.returncode == 0, sent.stderr
        topic = Topics(settings.namespace).sink_bucket("demux", "fulfillment")
        des = read_topic(settings, topic, expect=len(rows), timeout_s=300)
        with closing(codec_for(settings)) as codec:
            own = set()
            for m in des:
                assert m.value()[0] == 0, "not the registry wire format"
                e = FulfillmentEvent.decode(codec, m.value())
                us = int(e.occurred_at.timestamp() * 1_000_000)
                own.add(_fields(m.key().decode(), msgspec.to_builtins(e), us))
        assert {f[1] for f in own} == {r["id"] for r in rows}
        yield settings, topic, own
    finally:
        exits = stages.stop_all()
    assert set(exits.values()) == {0}, (exits, stages.tails())


def _subscribe(argv: list[str], cwd: Path) -> list[dict[str, Any]]:
    """Run a subscriber from ``cwd``; the records it printed, one JSON object a line."""
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_python_example_imports_nothing_of_the_pipeline() -> None:
    tree = ast.parse(PYTHON_SUBSCRIBER.read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "argparse", "json", "time", "uuid", "confluent_kafka"}, roots


def test_stock_python_consumer_reads_the_documented_records(
    pipeline_output: tuple[Settings, str, set[Fields]], tmp_path: Path
) -> None:
    settings, topic, own = pipeline_output
    # Isolated, from elsewhere: nothing of the repository on its path but what it imports.
    lines = _subscribe(
        [
            *(sys.executable, "-I", str(PYTHON_SUBSCRIBER)),
            *("--bootstrap", settings.kafka_bootstrap_servers),
            *("--registry", settings.schema_registry_url),
            *("--topic", topic, "--count", str(len(own)), "--timeout", "180"),
        ],
        tmp_path,
    )
    got = set()
    for line in lines:
        at = datetime.fromisoformat(line["value"]["occurred_at"]).astimezone(UTC)
        got.add(_fields(line["key"], line["value"], int(at.timestamp() * 1_000_000)))
    assert got == own


def _node() -> str:
    node = shutil.which("node")
    missing = (
        "node is not installed"
        if node is None
        else None
        if (NODE_DIR / "node_modules" / "kafkajs").is_dir()
        else f"no node_modules in {NODE_DIR}: run `make deps`"
    )
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI: {missing}", pytrace=False)
        pytest.skip(missing)
    assert node is not None
    return node


def test_stock_node_consumer_reads_the_documented_records(
    pipeline_output: tuple[Settings, str, set[Fields]], tmp_path: Path
) -> None:
    node = _node()
    settings, topic, own = pipeline_output
    lines = _subscribe(
        [
            *(node, str(NODE_DIR / "subscribe.js"), settings.kafka_bootstrap_servers),
            *(settings.schema_registry_url, topic, str(len(own)), "180"),
        ],
        tmp_path,
    )
    # avsc hands a timestamp-micros long back as its number of microseconds.
    got = {_fields(v["key"], v["value"], int(v["value"]["occurred_at"])) for v in lines}
    assert got == own
