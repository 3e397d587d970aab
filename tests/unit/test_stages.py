"""The stage registry's invariants: no services, only the declarations and the source tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from common import stages
from common.codec import Codec
from common.settings import Settings
from common.stages import STAGES, Stage
from common.topics import Topics
from gep.stage import Gep

ROOT = Path(__file__).resolve().parents[2]
STAGE_PACKAGES = ("gep", "demux", "dep", "collector")
SETTINGS = Settings(kafka_bootstrap_servers="-", database_url="-", namespace="t")
TOPICS = Topics("t")
IDS = [s.name for s in STAGES]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", STAGE_PACKAGES)
def test_no_stage_imports_another(package: str) -> None:
    others = [p for p in STAGE_PACKAGES if p != package]
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in others, f"{path.relative_to(ROOT)} imports {name}"
            # The registry imports the stages; a stage importing it back would be a cycle.
            # dep/registry.py is the DEPs' view of it, imported by no DEP.
            if path != ROOT / "dep" / "registry.py":
                assert name != "common.stages", f"{path.relative_to(ROOT)} imports the registry"


def test_every_stage_kind_is_there_once_per_name() -> None:
    names = [s.name for s in STAGES]
    assert len(set(names)) == len(names)
    assert {"gep", "demux", "collector"} <= set(names)
    assert {s.dep.name for s in STAGES if s.dep is not None} == set(stages.DEPS)
    assert len(stages.DEPS) >= 1


@pytest.mark.parametrize(
    "derived",
    [
        lambda s: s.group(SETTINGS),
        lambda s: s.dead_letter_topic(TOPICS),
        lambda s: s.metrics_port,
        lambda s: s.owner,
        lambda s: s.short_name,
    ],
    ids=["group", "dead-letter topic", "metrics port", "owner", "short name"],
)
def test_what_derives_from_a_stage_is_never_shared(derived: object) -> None:
    assert callable(derived)
    values = [derived(s) for s in STAGES]
    present = [v for v in values if v is not None]
    assert len(set(present)) == len(present), values


@pytest.mark.parametrize("stage", STAGES, ids=IDS)
def test_every_input_is_written_by_a_stage(stage: Stage) -> None:
    # The ingest topic is fed from outside too (`da emit`); every other input is some stage's
    # output or dead-letter topic, so nothing waits on a topic no one writes.
    written = {TOPICS.ingest}
    for s in STAGES:
        written |= {*s.output_topics(TOPICS), s.dead_letter_topic(TOPICS)}
    assert set(stage.input_topics(TOPICS)) <= written


@pytest.mark.parametrize("stage", STAGES, ids=IDS)
def test_every_topic_a_stage_uses_is_created(stage: Stage) -> None:
    created = set(stages.all_topics(TOPICS))
    used = {*stage.input_topics(TOPICS), *stage.output_topics(TOPICS)}
    assert used | {stage.dead_letter_topic(TOPICS)} <= created


@pytest.mark.parametrize("stage", STAGES, ids=IDS)
def test_consuming_stages_have_a_group_and_inputs_and_a_handler(stage: Stage) -> None:
    if not stage.consumes:
        assert stage.group(SETTINGS) is None and not stage.inputs
        return
    assert stage.group(SETTINGS) == f"t.da.{stage.name}"
    assert stage.inputs
    if stage.dep is not None:
        assert stage.owner == stage.dep.name
        assert stage.dep.build(SETTINGS, Codec()) is not None
    else:
        assert callable(stage.handler(SETTINGS, Codec()))


def test_a_store_stage_without_its_dep_is_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match="store stage"):
        Stage("dep.x", "store", "x", inputs=(stages.INGEST,), outputs=(), metrics_port=1)
    with pytest.raises(ValueError, match="needs inputs"):
        Stage(
            "y",
            "transform",
            "y",
            inputs=(),
            outputs=(),
            metrics_port=1,
            transform=lambda s, c: Gep(TOPICS, c),
        )


def test_lookup_takes_stage_names_and_dep_names() -> None:
    dep = next(s for s in STAGES if s.dep is not None)
    assert stages.get(dep.name) is dep
    assert dep.dep is not None and stages.get(dep.dep.name) is dep
    with pytest.raises(KeyError, match="known: gep"):
        stages.get("nope")


def test_run_refuses_an_unknown_stage_naming_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["run", "nope"])
    assert result.exit_code == 2
    assert "collector" in result.output


def test_dlq_commands_take_any_name_of_a_stage_and_refuse_unknown_ones() -> None:
    result = CliRunner().invoke(app, ["dlq", "show", "nosuchstage"])
    assert result.exit_code == 2 and "known: gep" in result.output
