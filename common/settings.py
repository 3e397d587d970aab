"""The one place settings are read.

Settings come from the environment (``DA_*``); anything the environment leaves unset is taken
from the stack file that ``da stack up`` writes (``<state dir>/stack.env``). They are loaded once,
by the CLI, and passed down: no other module reads the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar
from urllib.parse import urlsplit

from common.kafka_properties import MASK, PropertyError, from_environment, is_secret
from common.stack_paths import read_env_file, stack_file


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and says what to do."""


# A DEP's own database: DA_DEP_<NAME>_DATABASE_URL, NAME its registry name upper-cased, - as _.
_DEP_DATABASE_RE = re.compile(r"^DA_DEP_([A-Z0-9_]+)_DATABASE_URL$")


_T = TypeVar("_T")


def _setting(default: _T, doc: str) -> _T:
    # The doc is what the README's settings table says (common/settings_table.py renders it).
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = field(
        metadata={"doc": "Kafka brokers, `host:port,...`; `da stack up` sets it in the stack file"}
    )
    database_url: str = field(
        metadata={
            "doc": "PostgreSQL URL (libpq: `sslmode=verify-full&sslrootcert=...` for TLS); "
            "`da stack up` sets it in the stack file"
        }
    )
    namespace: str = _setting(
        "", "prefix of every topic and consumer group (tests use a fresh one per run)"
    )
    database_schema: str = _setting("da", "PostgreSQL schema that holds every state store")
    partitions: int = _setting(6, "partitions of each topic `da topics ensure` creates")
    replication_factor: int = _setting(
        1,
        "replicas of each topic `da topics ensure` creates (3 or more: 2 must be in sync for a "
        "write); `da stack up --brokers 3` sets 3 in the stack file",
    )
    batch_size: int = _setting(1000, "events a stage takes in one poll and one transaction")
    poll_timeout_s: float = _setting(0.5, "seconds a stage's poll waits for events")
    batch_linger_s: float = _setting(
        0.05,
        "seconds a stage waits to fill a batch while events are arriving (a backlog fills it at "
        "once); 0: take what has arrived",
    )
    io_timeout_s: float = _setting(
        30.0, "seconds a stage waits for the broker or the database before it reports and retries"
    )
    instance_id: str = _setting(
        "",
        "per-instance suffix of a transactional id; empty: the host name (instances of one stage "
        "on one host each need their own)",
    )
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR; DEBUG adds tracebacks")
    # A bad deploy should not shovel the stream into the dead-letter topic.
    dead_letter_max_ratio: float = _setting(
        0.5,
        "a stage stops (exits non-zero, commits nothing) when more than this share of its last "
        "1,000 events was invalid",
    )
    fulfillment_lifecycle: str = _setting(
        "", "a TOML file of fulfillment states and triggers; empty: dep/fulfillment_states.toml"
    )
    # So that a cycle of DEPs can never spin.
    max_hops: int = _setting(
        4, "longest DE -> DEP -> DE chain; the DEP that would go further dead-letters its input"
    )
    park_timeout_s: float = _setting(
        3600.0, "seconds a parked DE waits for what it needs before it is dead-lettered"
    )
    # An output past it can never be written, so it is a dead letter, not a retry.
    max_message_bytes: int = _setting(
        1_000_000,
        "the largest record a stage may produce (the broker's max.message.bytes); the collector "
        "derives its body limit from it",
    )
    # The message in flight when a stage died this many times in a row is quarantined
    # (``common.guard``).
    max_crashes: int = _setting(
        3,
        "a message in flight when the stage died this many times in a row is dead-lettered as "
        "`quarantined` by the next start instead of handled",
    )
    test_crash_marker: str = _setting(
        "", "tests only: a stage exits hard on a message containing this text, as a crash would"
    )
    metrics_port: int = _setting(
        0,
        "where a stage serves /metrics, /healthz and /readyz: 0 nowhere, -1 any free port (logged)",
    )
    metrics_host: str = _setting("127.0.0.1", "address a stage serves /metrics and health on")
    # A stage alive but out of its group, or wedged, must end for its supervisor to restart it.
    loop_ttl_s: float = _setting(
        300.0, "/healthz fails when the run loop has not turned for this many seconds"
    )
    unassigned_max_s: float = _setting(
        60.0,
        "/healthz fails when the process held no partition this long while its input has lag "
        "nobody consumes",
    )
    unhealthy_exit_s: float = _setting(
        120.0, "unhealthy this many seconds, a stage exits (status 3) for its supervisor"
    )
    # Set: stages write the registry wire format and read both framings.
    schema_registry_url: str = _setting(
        "",
        "a Confluent-compatible schema registry's API root (Apicurio: `.../apis/ccompat/v7`); "
        "set: stages write the registry wire format and read both; empty: single-object encoding",
    )
    # Kept out of repr: a secret.
    schema_registry_basic_auth: str = field(
        default="",
        repr=False,
        metadata={"doc": "`user:password` for the registry's HTTP basic auth; empty: none"},
    )
    collector_host: str = _setting(
        "127.0.0.1", "address `da collector run` listens on (a container sets 0.0.0.0)"
    )
    collector_port: int = _setting(8080, "port `da collector run` listens on")
    collector_max_body_bytes: int = _setting(
        1_000_000, "a body past this is refused (413) before it is read in full"
    )
    collector_max_batch: int = _setting(1000, "most events in one post")
    collector_ack_timeout_s: float = _setting(
        5.0, "seconds a post waits for the broker's acknowledgement before answering 503"
    )
    collector_max_skew_s: float = _setting(
        300.0, "an event more than this many seconds ahead of the collector's clock is refused"
    )
    collector_rate_limit: float = _setting(
        1000.0, "events per second per application without its own `da apps add --rate`"
    )
    collector_unknown_types: str = _setting(
        "reject", "`reject` or `accept` an event whose (category, name) has no schema file"
    )
    collector_event_types: str = _setting(
        "", "directory of event-type schema files; empty: schemas/web-types/"
    )
    collector_apps_refresh_s: float = _setting(
        5.0, "seconds between the collector's reads of the applications table (revocations)"
    )
    # A wait past it is late: the console's SLA badge, and ``fulfillment.wait_exceeded``.
    wait_sla_s: float = _setting(
        900.0,
        "seconds a test taker may wait (in WAITING) before the wait is past its SLA (the "
        "console's badge; `fulfillment-state` emits `fulfillment.wait_exceeded`, once per visit)",
    )
    web_host: str = _setting("127.0.0.1", "address `da web` (the browser console) listens on")
    web_port: int = _setting(8088, "port `da web` listens on")
    # Live use measures a wait to now; a replay of old events has no "now" but its newest event.
    clock: str = _setting(
        "wall",
        "what waits are measured to: `wall` (now) or `event` (the newest event's time, for "
        "replayed history such as the demo's)",
    )
    # Kept out of repr because some are secrets.
    kafka_properties: tuple[tuple[str, str], ...] = field(
        default=(),
        repr=False,
        metadata={
            "variable": "DA_KAFKA_<PROPERTY>",
            "doc": "any librdkafka property for every Kafka client: DA_KAFKA_SECURITY_PROTOCOL, "
            "DA_KAFKA_SASL_USERNAME, DA_KAFKA_SSL_CA_LOCATION, ... (secrets masked)",
        },
    )

    # Kept out of repr: URLs may hold passwords.
    dep_database_urls: tuple[tuple[str, str], ...] = field(
        default=(),
        repr=False,
        metadata={
            "variable": "DA_DEP_<NAME>_DATABASE_URL",
            "doc": "a DEP's own PostgreSQL (NAME: its name upper-cased, `-` as `_`, e.g. "
            "DA_DEP_FULFILLMENT_STATE_DATABASE_URL): its tables, offsets, outbox and parked "
            "events live there; unset: DA_DATABASE_URL",
        },
    )

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``DA_*`` from ``env`` (default: the process environment) over the stack file."""
        env = dict(os.environ if env is None else env)
        merged = {**read_env_file(stack_file(env)), **env}
        kafka = merged.get("DA_KAFKA_BOOTSTRAP_SERVERS", "")
        db = merged.get("DA_DATABASE_URL", "")
        if not kafka or not db:
            missing = [
                n
                for n, v in (("DA_KAFKA_BOOTSTRAP_SERVERS", kafka), ("DA_DATABASE_URL", db))
                if not v
            ]
            where = stack_file(env)
            # Outside any checkout, `da stack up` would start a second stack here: say so.
            outside = not env.get("DA_STATE_DIR") and not where.parent.exists()
            hint = (
                "run da from the checkout whose stack runs (or set DA_STATE_DIR), or `da stack up` "
                "to start one here"
                if outside
                else "run `da stack up`"
            )
            raise SettingsError(
                f"{' and '.join(missing)} not set and no local stack found at {where}: {hint}, "
                "or set them to point at your services"
            )
        kwargs: dict[str, object] = {
            "kafka_bootstrap_servers": kafka,
            "database_url": db,
            "kafka_properties": _kafka_properties(merged),
            "dep_database_urls": tuple(
                sorted(
                    (m.group(1), value)
                    for key, value in merged.items()
                    if (m := _DEP_DATABASE_RE.match(key)) and value
                )
            ),
        }
        for f in fields(cls):
            name = "DA_" + f.name.upper()
            if f.name in kwargs or name not in merged:
                continue
            raw = merged[name]
            try:
                kwargs[f.name] = (
                    int(raw) if f.type == "int" else float(raw) if f.type == "float" else raw
                )
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a valid {f.type}") from None
        settings = cls(**kwargs)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raises ``SettingsError`` naming the first malformed setting and what to use."""
        from common.settings_check import check  # it reads these settings' fields

        check(self)

    def kafka_config(self) -> dict[str, str]:
        """The librdkafka properties from the environment, as a client config."""
        return dict(self.kafka_properties)

    def secrets(self) -> list[str]:
        """Values that must never appear in a log line or on screen: secret Kafka properties
        and the database password."""
        found = [value for prop, value in self.kafka_properties if is_secret(prop) and value]
        for url in self.database_urls():
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                found.append(password)
        return found

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def shown_kafka_properties(self) -> list[str]:
        """``property=value`` for each DA_KAFKA_* property, secrets masked."""
        return [f"{p}={MASK if is_secret(p) else v}" for p, v in self.kafka_properties]

    def database_url_for(self, dep: str) -> str:
        """The database a DEP's state store lives in (its tables, offsets, outbox, parked and
        in-flight rows, so that its commit is one local transaction): its own when
        DA_DEP_<NAME>_DATABASE_URL is set, else the shared DA_DATABASE_URL."""
        return dict(self.dep_database_urls).get(dep_variable_name(dep), self.database_url)

    def for_dep(self, dep: str) -> Settings:
        """These settings with the DEP's database as the database."""
        return replace(self, database_url=self.database_url_for(dep))

    def database_urls(self) -> list[str]:
        """Every distinct database: the shared one first."""
        return list(dict.fromkeys([self.database_url, *(u for _, u in self.dep_database_urls)]))

    def group_id(self, stage: str) -> str:
        """Consumer group of a stage; every instance of the stage joins it."""
        base = f"da.{stage}"
        return f"{self.namespace}.{base}" if self.namespace else base


def dep_variable_name(dep: str) -> str:
    """The NAME in DA_DEP_<NAME>_DATABASE_URL for a DEP's registry name."""
    return dep.upper().replace("-", "_")


def _kafka_properties(merged: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    try:
        return from_environment(merged)
    except PropertyError as exc:
        raise SettingsError(str(exc)) from None
