"""Every stage of the pipeline, in one typed registry: GEP, demux, the collector and each DEP.

A ``Stage`` says what a process of that stage is: its kind, the topics it reads and writes, its
consumer group and dead-letter topic (both derived from its name), who owns its outbox and parked
rows, how its handler is built, and the port its metrics and health are served on. The CLI
(``da run``, ``da dlq``, ``da replay``, ``da topics``, ``da status``, ``da up``), the bench, the
deployment checks and the tests all read it; nothing else lists stages.

Adding a DEP: its module with a ``SPEC``, and one line in ``_DEPS`` below (at the end, so the
metrics ports of the others stay where they are).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from common.codec import Codec
from common.names import COLLECTOR, DEMUX, GEP, dep_stage
from common.settings import Settings, SettingsError, dep_variable_name
from common.store import StoreHandler
from common.topics import Source, Topics
from common.transactional import Handler
from demux.stage import Demux, sink_buckets
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
from gep.stage import Gep

Kind = Literal["transform", "store", "http"]
"""``transform``: Kafka to Kafka in transactions (GEP, demux); ``store``: Kafka to PostgreSQL
with the offsets in the database (DEPs); ``http``: a web service producing to Kafka (collector)."""

Role = Literal["ingest", "canonical", "sink", "dead_letter"]


@dataclass(frozen=True, slots=True)
class TopicRef:
    """A topic by role, independent of the namespace: ``resolve`` gives its name."""

    role: Role
    source: Source | None = None  # sink topics: the stage kind that emits them
    name: str = ""  # sink topics: the bucket; dead-letter topics: the stage

    def resolve(self, topics: Topics) -> str:
        if self.role == "ingest":
            return topics.ingest
        if self.role == "canonical":
            return topics.canonical
        if self.role == "dead_letter":
            return topics.dead_letter(self.name)
        if self.source is None:
            raise ValueError(f"sink topic {self.name!r} without a source")
        return topics.sink_bucket(self.source, self.name)


INGEST = TopicRef("ingest")
CANONICAL = TopicRef("canonical")


def sink(source: Source, bucket: str) -> TopicRef:
    return TopicRef("sink", source, bucket)


def dead_letters(stage: str) -> TopicRef:
    return TopicRef("dead_letter", None, stage)


TransformBuilder = Callable[[Settings, Codec], Handler]
StoreBuilder = Callable[[Settings, Codec], StoreHandler[Any]]


@dataclass(frozen=True)
class Stage:
    name: str  # "gep", "demux", "collector", "dep.<dep name>"
    kind: Kind
    description: str
    inputs: tuple[TopicRef, ...]
    outputs: tuple[TopicRef, ...]  # what it writes besides its dead-letter topic
    # Where /metrics, /healthz and /readyz are served by default (manifests, `da up`); the
    # collector serves them on its own HTTP port.
    metrics_port: int
    # Owner of its rows in da_outbox and da_parked (a DEP's name); None: it keeps none.
    owner: str | None = None
    transform: TransformBuilder | None = None  # kind "transform": builds the handler
    dep: DepSpec | None = None  # kind "store": the DEP's declaration (its builder among it)

    def __post_init__(self) -> None:
        # Checked when the registry is built, so a wrong line fails every command at once.
        if (self.kind == "transform") != (self.transform is not None):
            raise ValueError(f"stage {self.name}: a transform stage, and only one, has transform=")
        if (self.kind == "store") != (self.dep is not None):
            raise ValueError(f"stage {self.name}: a store stage, and only one, has dep=")
        if self.kind != "http" and not self.inputs:
            raise ValueError(f"stage {self.name}: a consuming stage needs inputs")

    @property
    def consumes(self) -> bool:
        return self.kind != "http"

    @property
    def short_name(self) -> str:
        """What people type: ``gep``, ``demux``, ``collector``, or the DEP's own name."""
        return self.dep.name if self.dep is not None else self.name

    def group(self, settings: Settings) -> str | None:
        """Its consumer group (every instance joins it); None for the collector."""
        return settings.group_id(self.name) if self.consumes else None

    def dead_letter_topic(self, topics: Topics) -> str:
        return topics.dead_letter(self.name)

    def input_topics(self, topics: Topics) -> list[str]:
        return [t.resolve(topics) for t in self.inputs]

    def output_topics(self, topics: Topics) -> list[str]:
        return [t.resolve(topics) for t in self.outputs]

    def handler(self, settings: Settings, codec: Codec) -> Handler:
        if self.transform is None:
            raise ValueError(f"stage {self.name} is not a transform stage")
        return self.transform(settings, codec)


def dep_stage_of(spec: DepSpec, metrics_port: int) -> Stage:
    name = dep_stage(spec.name)
    return Stage(
        name=name,
        kind="store",
        description=spec.description,
        inputs=tuple(sink(src, b) for src, b in spec.inputs)
        + tuple(dead_letters(s) for s in spec.dead_letters_of),
        outputs=tuple(sink(src, b) for src, b in spec.emits),
        metrics_port=metrics_port,
        owner=spec.name,
        dep=spec,
    )


_DEPS = (
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
_DEP_PORTS = 9410

STAGES: tuple[Stage, ...] = (
    Stage(
        GEP,
        "transform",
        "GEP: validate and normalize raw events into canonical events",
        inputs=(INGEST,),
        outputs=(CANONICAL,),
        metrics_port=9401,
        transform=lambda s, c: Gep(Topics(s.namespace), c, s.max_message_bytes),
    ),
    Stage(
        DEMUX,
        "transform",
        "demux: fan canonical events out into discrete events (one metric each)",
        inputs=(CANONICAL,),
        outputs=tuple(sink(src, b) for src, b in dict.fromkeys(sink_buckets())),
        metrics_port=9402,
        transform=lambda s, c: Demux(Topics(s.namespace), c),
    ),
    Stage(
        COLLECTOR,
        "http",
        "the HTTP collector: web and mobile events onto the ingest topic",
        inputs=(),
        outputs=(INGEST,),
        metrics_port=8080,
    ),
    *(dep_stage_of(m.SPEC, _DEP_PORTS + i) for i, m in enumerate(_DEPS)),
)

BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
DEPS: dict[str, DepSpec] = {s.dep.name: s.dep for s in STAGES if s.dep is not None}


def get(name: str) -> Stage:
    """A stage by its name (``gep``, ``dep.usage-metrics``) or a DEP by its own name."""
    found = BY_NAME.get(name) or BY_NAME.get(dep_stage(name))
    if found is None:
        known = ", ".join(s.short_name for s in STAGES)
        raise KeyError(f"no stage named {name!r}; known: {known}")
    return found


def consuming() -> list[Stage]:
    """The stages that run the loop over Kafka (every one but the collector)."""
    return [s for s in STAGES if s.consumes]


def all_topics(topics: Topics) -> list[str]:
    """Every topic the pipeline uses: inputs, outputs and dead-letter topics of every stage, and
    the topics answers to commands may go to."""
    names: set[str] = set(topics.replies)
    for s in STAGES:
        names.update(s.input_topics(topics), s.output_topics(topics))
        names.add(s.dead_letter_topic(topics))
    return sorted(names)


def check_dep_databases(settings: Settings) -> None:
    """A DA_DEP_<NAME>_DATABASE_URL naming no DEP is a typo that would leave the DEP's state
    where it was: refused, naming the DEPs there are."""
    known = {dep_variable_name(name): name for name in DEPS}
    unknown = sorted(n for n, _ in settings.dep_database_urls if n not in known)
    if unknown:
        raise SettingsError(
            f"DA_DEP_{unknown[0]}_DATABASE_URL names no DEP; NAME is one of "
            f"{', '.join(sorted(known))}"
        )
