"""Where the local stack lives: its state directory (data, logs, the stack file) and the shared
cache of the jars it runs. Read before there can be ``Settings`` (they say where to find them),
so these read the environment themselves."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# Settings read outside ``Settings`` (before there can be one): (variable, default, doc).
OTHER_SETTINGS = (
    (
        "DA_STATE_DIR",
        "`.da` in the checkout",
        "where `da stack up` keeps data, logs and the stack file; found from any subfolder",
    ),
    (
        "DA_KAFKA_HOME",
        "`~/.cache/da-pipeline/kafka-<version>`",
        "where the local stack's Kafka jars are fetched once and shared by every checkout",
    ),
    (
        "DA_SCHEMA_REGISTRY_HOME",
        "`~/.cache/da-pipeline/apicurio-registry-<version>`",
        "where the local stack's schema registry is fetched once and shared by every checkout",
    ),
)


def state_dir(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """Where the local stack keeps its data, logs and stack file: DA_STATE_DIR, else the nearest
    ``.da`` from the working directory up (as git finds ``.git``), else ``.da`` at the top of the
    git checkout, else ``./.da``. So every subfolder of a checkout sees the same stack."""
    env = os.environ if env is None else env
    if env.get("DA_STATE_DIR"):
        return Path(env["DA_STATE_DIR"]).resolve()
    here = (cwd or Path.cwd()).resolve()
    for marker in (".da", ".git"):
        for folder in (here, *here.parents):
            if (folder / marker).exists():
                return folder / ".da"
    return here / ".da"


def kafka_home(env: Mapping[str, str] | None = None, version: str = "") -> Path:
    """Where the local stack's Kafka jars live."""
    return _cached("DA_KAFKA_HOME", f"kafka-{version}", env)


def schema_registry_home(env: Mapping[str, str] | None = None, version: str = "") -> Path:
    """Where the local stack's schema registry lives."""
    return _cached("DA_SCHEMA_REGISTRY_HOME", f"apicurio-registry-{version}", env)


def _cached(variable: str, name: str, env: Mapping[str, str] | None) -> Path:
    env = os.environ if env is None else env
    override = env.get(variable)
    if override:
        return Path(override).expanduser().resolve()
    return Path.home() / ".cache" / "da-pipeline" / name


def stack_file(env: Mapping[str, str] | None = None) -> Path:
    return state_dir(env) / "stack.env"


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values
