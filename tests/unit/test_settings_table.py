"""The README's settings table is what ``common.settings_table`` renders from ``common.settings``,
and every ``DA_*`` variable the shipped code names is in it."""

from __future__ import annotations

import re
from pathlib import Path

from common import settings_table

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["cli", "common", "gep", "demux", "dep", "collector", "collector_client", "deploy"]


def test_the_readme_table_is_the_rendered_one() -> None:
    shown = settings_table.current(settings_table.README.read_text())
    assert shown == settings_table.render(), "run `python -m common.settings_table`"


def test_every_variable_the_code_names_is_documented() -> None:
    documented = {v.strip("`") for v, _, _ in settings_table.rows()}
    named: set[str] = set()
    for folder in SHIPPED:
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".sh", ".yml", ".yaml") and path.is_file():
                named |= set(re.findall(r"\bDA_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    # DA_KAFKA_<PROPERTY> covers every librdkafka property (its examples included).
    undocumented = {n for n in named - documented if not n.startswith("DA_KAFKA_")}
    assert undocumented == set()
    assert {"DA_REPLICATION_FACTOR", "DA_STATE_DIR", "DA_KAFKA_HOME"} <= documented
    assert "DA_COLLECTOR_RATE_LIMIT" in documented
