"""Every DEP, in one place. Adding a DEP: write its module with a ``SPEC``, add it here."""

from __future__ import annotations

from common.db import Migration
from dep import (
    collection_rollup,
    collector_errors,
    competency_stats,
    content_catalog,
    fulfillment_state,
    ous_dispatcher,
    ous_lifecycle,
    ous_pipeline_driver,
    usage_metrics,
    web_events,
)
from dep.spec import DepSpec

DEPS: dict[str, DepSpec] = {
    m.SPEC.name: m.SPEC
    for m in (
        fulfillment_state,
        content_catalog,
        usage_metrics,
        collection_rollup,
        competency_stats,
        web_events,
        collector_errors,
        ous_lifecycle,
        ous_dispatcher,
        ous_pipeline_driver,
    )
}


def get(name: str) -> DepSpec:
    try:
        return DEPS[name]
    except KeyError:
        raise KeyError(f"no DEP named {name!r}; known: {', '.join(sorted(DEPS))}") from None


def all_migrations() -> list[Migration]:
    return [m for spec in DEPS.values() for m in spec.migration_files()]
