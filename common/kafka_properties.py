"""``DA_KAFKA_<PROPERTY>``: any librdkafka property through the environment, and which of them
hold secrets. ``common.settings`` reads them (it is the one place that reads the environment);
``common.kafka`` applies them to every client."""

from __future__ import annotations

from collections.abc import Mapping


class PropertyError(Exception):
    """A DA_KAFKA_* variable the pipeline refuses; the message names it."""


# DA_KAFKA_<PROPERTY> passes any librdkafka property to every client; these two are not
# properties: the bootstrap list is a setting of its own, the home is where the launcher's jars go.
_KAFKA_PREFIX = "DA_KAFKA_"
_KAFKA_NOT_PROPERTIES = frozenset({"DA_KAFKA_BOOTSTRAP_SERVERS", "DA_KAFKA_HOME"})
# Properties the pipeline sets itself because its guarantees rest on them (offsets move in one
# place, transactions, read-committed): letting the environment change them would break those.
_KAFKA_OWNED = frozenset(
    {
        "bootstrap.servers",
        "group.id",
        "transactional.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "isolation.level",
        "enable.idempotence",
        "acks",
    }
)
# A property whose name contains one of these holds a secret: never shown, never logged.
_SECRET_MARKERS = ("password", "secret", "key.pem", "oauthbearer.config", "private.key")
MASK = "***"


def kafka_property(variable: str) -> str:
    """The librdkafka property a ``DA_KAFKA_*`` variable sets: DA_KAFKA_SASL_USERNAME ->
    sasl.username."""
    return variable[len(_KAFKA_PREFIX) :].lower().replace("_", ".")


def kafka_variable(prop: str) -> str:
    return _KAFKA_PREFIX + prop.upper().replace(".", "_")


def is_secret(prop: str) -> bool:
    return any(marker in prop for marker in _SECRET_MARKERS)


def from_environment(merged: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    found = []
    for name in sorted(merged):
        if not name.startswith(_KAFKA_PREFIX) or name in _KAFKA_NOT_PROPERTIES:
            continue
        prop = kafka_property(name)
        if not prop or prop in _KAFKA_OWNED:
            raise PropertyError(
                f"{name}: the pipeline sets {prop or 'this'} itself (its guarantees rest on it); "
                "unset the variable"
            )
        found.append((prop, merged[name]))
    return tuple(found)
