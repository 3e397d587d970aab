"""deploy/: the compose file and the image stay in step with the code.

Nothing runs and Docker need not be installed: the files are parsed and checked against the
registry, the settings and the real ``da`` command tree.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from common.settings import Settings
from common.stages import DEPS, STAGES, Stage

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def service_name(stage: Stage) -> str:
    """The compose service of a stage: ``gep``, ``collector``, ``dep-<name>``."""
    return stage.name.replace(".", "-")


# The consuming stages: the collector's service is checked on its own (it serves HTTP).
SERVICES = [service_name(s) for s in STAGES if s.consumes]
SETTINGS_ENV = {"DA_" + f.name.upper() for f in dataclasses.fields(Settings)}
REQUIRED_ENV = ("DA_KAFKA_BOOTSTRAP_SERVERS", "DA_DATABASE_URL")


@cache
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def da_services() -> dict[str, dict[str, Any]]:
    """The services that run our image (the others are Kafka and PostgreSQL)."""
    return {name: s for name, s in services().items() if "build" in s}


def _argv(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def da_commands(service: dict[str, Any]) -> list[list[str]]:
    """The arguments after ``da`` of every ``da`` command the service runs, in order."""
    entrypoint = _argv(service.get("entrypoint", ["da"]))
    command = _argv(service.get("command", []))
    if entrypoint == ["da"]:
        return [command]
    if entrypoint == ["sh", "-c"] and len(command) == 1:
        steps = [shlex.split(step) for step in re.split(r"&&|;|\|\|", command[0])]
        return [step[1:] for step in steps if step and step[0] == "da"]
    # Any other form would hide its commands from the checks below.
    raise AssertionError(f"cannot read the commands of entrypoint {entrypoint!r} {command!r}")


def all_da_commands() -> list[list[str]]:
    return [argv for s in da_services().values() for argv in da_commands(s)]


def running(argv: list[str]) -> list[str]:
    return [name for name, s in da_services().items() if argv in da_commands(s)]


def seconds(duration: str) -> float:
    """A compose duration such as ``60s``, ``1m30s``."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    if not duration or parts is None:
        raise AssertionError(f"unreadable duration {duration!r}")
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_every_registered_stage_has_exactly_one_service(stage: Stage) -> None:
    # Compose runs the long forms (`da dep run NAME`, `da gep run`); `da run NAME` is the same.
    argv = ["dep", "run", stage.dep.name] if stage.dep is not None else [stage.name, "run"]
    assert running(argv) == [service_name(stage)]


def test_every_dep_service_runs_a_registered_dep() -> None:
    # `da dep run NOPE --help` exits 0, so the command check below cannot catch a stale name.
    for argv in all_da_commands():
        if argv[:2] == ["dep", "run"]:
            assert argv[2] in DEPS, f"compose runs unregistered DEP {argv[2]!r}"


def test_init_creates_topics_migrates_and_registers_schemas() -> None:
    assert da_commands(services()["init"]) == [
        ["topics", "ensure"],
        ["db", "migrate"],
        ["schemas", "register"],
    ]


@pytest.mark.parametrize("argv", all_da_commands(), ids=" ".join)
def test_every_command_exists_in_the_cli(argv: list[str]) -> None:
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, f"`da {' '.join(argv)}` is not a command:\n{result.output}"


def test_every_da_variable_is_a_setting() -> None:
    named = set(re.findall(r"\bDA_[A-Z0-9_]+", COMPOSE_FILE.read_text()))
    assert named, "the compose file names no DA_ variable"
    assert named <= SETTINGS_ENV, f"not settings: {sorted(named - SETTINGS_ENV)}"


def test_stages_use_the_compose_registry_with_persistent_ids() -> None:
    registry = services()["schema-registry"]
    assert registry["image"] == "apicurio/apicurio-registry:3.0.9"
    url = services()["gep"]["environment"]["DA_SCHEMA_REGISTRY_URL"]
    assert url == "http://schema-registry:8080/apis/ccompat/v7"
    # In memory, a restarted registry would hand the records' ids to other schemas.
    assert registry["environment"]["APICURIO_STORAGE_SQL_KIND"] == "postgresql"


@pytest.mark.parametrize("name", sorted(da_services()))
def test_every_da_service_gets_the_required_settings(name: str) -> None:
    environment = services()[name]["environment"]
    assert isinstance(environment, dict)
    for var in REQUIRED_ENV:
        assert environment.get(var), f"{name}: {var} not set"


@pytest.mark.parametrize("stage", SERVICES)
def test_no_stage_pins_its_instance_id(stage: str) -> None:
    # The transactional id is <group>.<instance id>, the instance id defaulting to the container's
    # host name; one DA_INSTANCE_ID shared by `--scale`d containers would fence them in turn.
    assert "DA_INSTANCE_ID" not in services()[stage]["environment"]


@pytest.mark.parametrize("stage", SERVICES)
def test_stage_waits_for_init_restarts_and_may_finish_its_batch(stage: str) -> None:
    service = services()[stage]
    assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert service["restart"] == "unless-stopped"
    io_timeout = next(f.default for f in dataclasses.fields(Settings) if f.name == "io_timeout_s")
    assert isinstance(io_timeout, float)
    assert seconds(service["stop_grace_period"]) > io_timeout


def test_init_waits_for_healthy_kafka_postgres_and_registry() -> None:
    init = services()["init"]
    assert init.get("restart", "no") == "no"
    for dependency in ("kafka", "postgres", "schema-registry"):
        assert init["depends_on"][dependency]["condition"] == "service_healthy"
        assert services()[dependency]["healthcheck"]["test"]


def test_single_broker_can_run_transactions() -> None:
    env = services()["kafka"]["environment"]
    assert services()["kafka"]["image"] == "apache/kafka:4.1.1"
    for var in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert str(env[var]) == "1", var


def _instructions(keyword: str) -> list[str]:
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    return [line.split(None, 1)[1] for line in lines if line.upper().startswith(keyword + " ")]


def test_image_entrypoint_is_the_da_script() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "da" in pyproject["project"]["scripts"]
    assert json.loads(_instructions("ENTRYPOINT")[-1]) == ["da"]


def test_image_holds_the_source_tree_and_schemas() -> None:
    copied = {
        source.rstrip("/")
        for args in _instructions("COPY")
        for source in [a for a in args.split() if not a.startswith("--")][:-1]
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    expected = {"pyproject.toml", "schemas", *packages}
    assert expected <= copied, f"not copied into the image: {sorted(expected - copied)}"
    # codec.py finds schemas/ next to the packages, which only an install in place keeps true.
    assert any(re.search(r"pip install (-e|--editable) \.", run) for run in _instructions("RUN"))
