"""``da schemas register | check | list``: the schemas of ``schemas/`` in a schema registry.

Which schema each topic carries is read off the stages: the canonical topic, each demux rule's
buckets and ``SCHEMA``, each DEP's ``emits`` and ``emits_schema``. ``codec_for`` gives a stage
the codec its settings ask for: the registry framing when a registry is configured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import typer

from common.codec import SCHEMAS_DIR, Codec
from common.errors import TransientError
from common.events.canonical import CANONICAL
from common.kafka import ServiceUnavailable
from common.schema_registry import (
    COMPATIBILITY,
    RegistryIds,
    RegistryRefused,
    TopicSchema,
    avro,
    call,
    is_not_found,
    lookup,
    make_client,
)
from common.schema_registry import register as register_subject
from common.settings import Settings, SettingsError
from common.topics import Topics
from demux.stage import RULES
from demux.stage import STAGE as DEMUX
from dep.registry import DEPS
from gep.stage import STAGE as GEP

schemas_app = typer.Typer(
    help="The schemas of schemas/ in the schema registry (DA_SCHEMA_REGISTRY_URL).",
    no_args_is_help=True,
)
T = TypeVar("T")


def topic_schemas(namespace: str = "") -> list[TopicSchema]:
    """Every topic that carries Avro records, with the schema of its values, by topic."""
    topics = Topics(namespace)
    writers: dict[tuple[str, str], list[str]] = {(topics.canonical, CANONICAL): [GEP]}
    for rule in set(RULES.values()):
        for src, bucket in rule.BUCKETS:
            writers.setdefault((topics.sink_bucket(src, bucket), rule.SCHEMA), []).append(DEMUX)
    for spec in DEPS.values():
        for src, bucket in spec.emits:
            key = (topics.sink_bucket(src, bucket), spec.emits_schema)
            writers.setdefault(key, []).append(f"dep {spec.name}")
    return [
        TopicSchema(topic, schema, ", ".join(sorted(set(names))))
        for (topic, schema), names in sorted(writers.items())
    ]


def _readers(topic: str) -> list[str]:
    topics = Topics()
    found = [DEMUX] if topic == topics.canonical else []
    return found + [f"dep {spec.name}" for spec in DEPS.values() if topic in spec.topics(topics)]


def codec_for(settings: Settings) -> Codec:
    """The codec a stage uses: registry framing when a registry is configured."""
    if not settings.schema_registry_url:
        return Codec()
    ids = RegistryIds(make_client(settings), topic_schemas(settings.namespace))
    return Codec(registry=ids)


def markdown_table(codec: Codec | None = None) -> str:
    """The topic -> subject -> schema table of ``docs/schemas.md``."""
    codec = Codec() if codec is None else codec
    lines = [
        "| topic | subject | schema (newest version) | written by | read by |",
        "|---|---|---|---|---|",
    ]
    for ts in topic_schemas():
        newest = codec.latest(ts.schema).version
        link = f"[`{ts.schema}` v{newest}](../schemas/{ts.schema}/v{newest}.avsc)"
        readers = ", ".join(_readers(ts.topic)) or "no stage yet"
        lines.append(f"| `{ts.topic}` | `{ts.subject}` | {link} | {ts.writer} | {readers} |")
    return "\n".join(lines) + "\n"


@contextmanager
def _client() -> Iterator[tuple[Settings, Any]]:
    from cli.main import load_settings

    settings = load_settings()
    if not settings.schema_registry_url:
        raise SettingsError(
            "DA_SCHEMA_REGISTRY_URL not set: run `da stack up`, or point it at your registry"
        )
    with make_client(settings) as client:
        yield settings, client


def _reachable(request: Callable[[], T]) -> T:
    try:
        return request()
    except TransientError as exc:
        raise ServiceUnavailable(f"{exc}; start it with `da stack up`") from None


_SCHEMAS_OPTION = typer.Option(SCHEMAS_DIR, "--schemas", help="The schema directory.")


@schemas_app.command("register")
def register_all(schemas: Path = _SCHEMAS_OPTION) -> None:
    """Register every version of every schema under its topics' subjects (oldest first)."""
    with _client() as (settings, client):
        _register_all(settings, client, Codec(schemas))


def _register_all(settings: Settings, client: Any, codec: Codec) -> None:
    for ts in topic_schemas(settings.namespace):
        texts = [v.text for v in codec.versions(ts.schema)]
        schema_id = _reachable(partial(register_subject, client, ts.subject, texts))
        typer.echo(f"{ts.subject}: {ts.schema} v{len(texts)} is id {schema_id} ({COMPATIBILITY})")


@schemas_app.command("check")
def check(schemas: Path = _SCHEMAS_OPTION) -> None:
    """Refuse (exit 1) a schema version the registry's subjects would not accept."""
    with _client() as (settings, client):
        refused = _check_all(settings, client, Codec(schemas))
    if refused:
        typer.echo(
            f"{refused} schema version(s) would break their subject's {COMPATIBILITY} "
            "compatibility: give new fields defaults, never remove or retype one",
            err=True,
        )
        raise typer.Exit(1)


def _check_all(settings: Settings, client: Any, codec: Codec) -> int:
    refused = 0
    for ts in topic_schemas(settings.namespace):
        for version in codec.versions(ts.schema):
            verdict = _reachable(partial(_verdict, client, ts.subject, version.text))
            if verdict != "compatible" or version is codec.latest(ts.schema):
                typer.echo(f"{ts.subject}: {ts.schema} v{version.version} {verdict}")
            refused += verdict.startswith("INCOMPATIBLE")
    return refused


def _verdict(client: Any, subject: str, text: str) -> str:
    if lookup(client, subject, text) is not None:
        return "registered"
    try:
        ok = call(lambda: client.test_compatibility(subject, avro(text)))
    except RegistryRefused as exc:
        if is_not_found(exc):
            return "compatible (new subject)"
        raise
    return "compatible" if ok else f"INCOMPATIBLE with the registered versions ({COMPATIBILITY})"


@schemas_app.command("list")
def list_subjects(
    markdown: bool = typer.Option(False, help="The docs/schemas.md table, no registry needed."),
) -> None:
    """Every topic with its subject and schema, and what the registry holds under it."""
    if markdown:
        typer.echo(markdown_table(), nl=False)
        return
    with _client() as (settings, client):
        _list_all(settings, client, Codec())


def _list_all(settings: Settings, client: Any, codec: Codec) -> None:
    for ts in topic_schemas(settings.namespace):
        newest = codec.latest(ts.schema).version
        try:
            held = _reachable(partial(call, partial(client.get_latest_version, ts.subject)))
            state = f"registry: version {held.version}, id {held.schema_id}"
        except RegistryRefused as exc:
            if not is_not_found(exc):
                raise
            state = "not registered"
        typer.echo(f"{ts.topic}  {ts.subject}  {ts.schema} v{newest}  ({state})")


def register(app: typer.Typer) -> None:
    app.add_typer(schemas_app, name="schemas")
