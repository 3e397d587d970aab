"""The schema registry: subjects, the compatibility promised, and schema ids for the codec.

Any Confluent-compatible registry works (Confluent, Apicurio's ccompat API, Redpanda, Karapace),
through confluent-kafka's client. A topic's values live under the subject ``<topic>-value``
(TopicNameStrategy, what stock serializers and connectors look up). Every version under
``schemas/`` is registered oldest first, so the registry keeps the history the files keep and
checks each step against the subject's compatibility, FULL: a new version reads every record of
the one before, and the one before reads the new version's records, so producers and consumers
upgrade in any order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from common.errors import TransientError
from common.settings import Settings

COMPATIBILITY = "FULL"
# Confluent error codes: subject unknown, version unknown, schema unknown in that subject.
_NOT_FOUND = (40401, 40402, 40403)

T = TypeVar("T")


class RegistryRefused(Exception):
    """The registry refused a request for good (an incompatible schema, no access): not retried."""


@dataclass(frozen=True)
class TopicSchema:
    """A topic and the schema (name under ``schemas/``) of its values."""

    topic: str
    schema: str
    writer: str = ""  # the stages that produce it

    @property
    def subject(self) -> str:
        return f"{self.topic}-value"


# confluent-kafka's registry client is imported where it is used: with its HTTP and OAuth
# libraries it would add about a third to the start-up of every `da` command.


def make_client(settings: Settings) -> Any:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf = {"url": settings.schema_registry_url}
    if settings.schema_registry_basic_auth:
        conf["basic.auth.user.info"] = settings.schema_registry_basic_auth
    return SchemaRegistryClient(conf)


def call(request: Callable[[], T]) -> T:
    """Run one registry request: a 5xx or a network fault is transient, any other error final."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        return request()
    except SchemaRegistryError as exc:
        if exc.http_status_code >= 500 or exc.http_status_code < 0:
            raise TransientError(f"schema registry: {exc}") from exc
        raise RegistryRefused(f"schema registry: {exc}") from exc
    except Exception as exc:  # the HTTP library's own errors: connection refused, timeouts
        raise TransientError(f"schema registry unreachable: {type(exc).__name__}: {exc}") from exc


def is_not_found(exc: RegistryRefused) -> bool:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    cause = exc.__cause__
    return isinstance(cause, SchemaRegistryError) and cause.error_code in _NOT_FOUND


def avro(text: str) -> Any:
    from confluent_kafka.schema_registry import Schema

    return Schema(text, "AVRO")


def register(client: Any, subject: str, versions: Iterable[str]) -> int:
    """Set the subject's compatibility, register each version in order; the newest one's id."""
    call(lambda: client.set_compatibility(subject, COMPATIBILITY))
    schema_id = 0
    for text in versions:
        schema_id = int(call(partial(client.register_schema, subject, avro(text))))
    return schema_id


def lookup(client: Any, subject: str, text: str) -> int | None:
    """The id of ``text`` under ``subject``, or None when the subject does not hold it."""
    try:
        return int(call(lambda: client.lookup_schema(subject, avro(text)).schema_id))
    except RegistryRefused as exc:
        if is_not_found(exc):
            return None
        raise


class RegistryIds:
    """Schema ids for the codec: resolved once per schema, then served from memory.

    A stage writing a schema the registry does not hold under the subjects of its topics
    registers it there (as stock serializers auto-register), with the compatibility promised.
    """

    def __init__(self, client: Any, topic_schemas: Iterable[TopicSchema]) -> None:
        self._client = client
        self._subjects: dict[str, list[str]] = {}
        for ts in topic_schemas:
            self._subjects.setdefault(ts.schema, []).append(ts.subject)

    def writer_id(self, name: str, versions: list[str]) -> int:
        subjects = self._subjects.get(name)
        if not subjects:
            raise RegistryRefused(f"no topic carries schema {name!r}: nothing to register it under")
        ids = set()
        for subject in subjects:
            found = lookup(self._client, subject, versions[-1])
            ids.add(register(self._client, subject, versions) if found is None else found)
        if len(ids) != 1:
            raise RegistryRefused(f"schema {name!r} has several ids across its subjects: {ids}")
        return ids.pop()

    def close(self) -> None:
        self._client.close()

    def schema_text(self, schema_id: int) -> str | None:
        try:
            return str(call(lambda: self._client.get_schema(schema_id).schema_str))
        except RegistryRefused as exc:
            if is_not_found(exc):
                return None
            raise
