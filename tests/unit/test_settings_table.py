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


def _documented(name: str, documented: set[str]) -> bool:
    """Named in the table, or matched by a pattern there such as DA_DEP_<NAME>_DATABASE_URL
    (DA_KAFKA_<PROPERTY>: every librdkafka property, its examples included)."""
    patterns = [re.sub(r"<[A-Z]+>", "[A-Z0-9_]+", re.escape(v)) for v in documented if "<" in v]
    return name in documented or any(re.fullmatch(p, name) for p in patterns)


def test_every_variable_the_code_names_is_documented() -> None:
    documented = {v.strip("`") for v, _, _ in settings_table.rows()}
    named: set[str] = set()
    for folder in SHIPPED:
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".sh", ".yml", ".yaml") and path.is_file():
                named |= set(re.findall(r"\bDA_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert {n for n in named if not _documented(n, documented)} == set()
    assert {"DA_REPLICATION_FACTOR", "DA_STATE_DIR", "DA_KAFKA_HOME"} <= documented
    assert "DA_COLLECTOR_RATE_LIMIT" in documented


def test_a_deps_own_database_is_documented_by_the_per_dep_pattern() -> None:
    documented = {v.strip("`") for v, _, _ in settings_table.rows()}
    assert _documented("DA_DEP_FULFILLMENT_STATE_DATABASE_URL", documented)
    assert _documented("DA_KAFKA_SASL_USERNAME", documented)
    assert not _documented("DA_DEP_FULFILLMENT_STATE_URL", documented)
    assert not _documented("DA_NO_SUCH_SETTING", documented)
