"""Every DEP, in one place. Adding a DEP: write its module with a ``SPEC``, add it here."""

from __future__ import annotations

from common.db import Migration
from dep import collector_errors, fulfillment_state, web_events
from dep.spec import DepSpec

DEPS: dict[str, DepSpec] = {
    spec.name: spec for spec in (fulfillment_state.SPEC, web_events.SPEC, collector_errors.SPEC)
}


def get(name: str) -> DepSpec:
    try:
        return DEPS[name]
    except KeyError:
        raise KeyError(f"no DEP named {name!r}; known: {', '.join(sorted(DEPS))}") from None


def all_migrations() -> list[Migration]:
    return [m for spec in DEPS.values() for m in spec.migration_files()]
