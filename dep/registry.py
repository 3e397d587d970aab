"""The DEPs, as the stage registry (``common.stages``) declares them: a DEP's module has a
``SPEC``; its one registry line is in ``common.stages``."""

from __future__ import annotations

from common.db import Migration
from common.stages import DEPS
from dep.spec import DepSpec

__all__ = ["DEPS", "all_migrations", "get"]


def get(name: str) -> DepSpec:
    try:
        return DEPS[name]
    except KeyError:
        raise KeyError(f"no DEP named {name!r}; known: {', '.join(sorted(DEPS))}") from None


def all_migrations() -> list[Migration]:
    return [m for spec in DEPS.values() for m in spec.migration_files()]
