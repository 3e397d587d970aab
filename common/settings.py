"""The one place settings are read.

Settings come from the environment (``DA_*``); anything the environment leaves unset is taken
from the stack file that ``da stack up`` writes (``<state dir>/stack.env``). They are loaded once,
by the CLI, and passed down: no other module reads the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and says what to do."""


_NAMESPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the local stack keeps its data, logs and stack file."""
    env = os.environ if env is None else env
    return Path(env.get("DA_STATE_DIR", ".da")).resolve()


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


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    database_url: str
    # Prefix for every topic and consumer group; tests use a uuid so runs never share state.
    namespace: str = ""
    # PostgreSQL schema that holds every state store.
    database_schema: str = "da"
    partitions: int = 6
    replication_factor: int = 1
    batch_size: int = 1000
    poll_timeout_s: float = 0.5
    # How long a stage waits for the broker or the database before it reports the fault and retries.
    io_timeout_s: float = 30.0
    # Stable per-instance suffix of a transactional id; empty: the host name.
    instance_id: str = ""
    log_level: str = "INFO"
    # A stage stops (exits non-zero, commits nothing) when more than this share of its last
    # 1,000 events was invalid: a bad deploy should not shovel the stream into the DLQ.
    dead_letter_max_ratio: float = 0.5
    # The fulfillment life-cycle (states and triggers); empty: the one shipped in dep/.
    fulfillment_lifecycle: str = ""
    # A DE -> DEP -> DE chain stops here: a DEP that would emit a DE of more hops dead-letters
    # its input with the chain instead, so a cycle of DEPs can never spin (seed 001's long tail).
    max_hops: int = 4
    # How long a parked DE (e.g. usage of content the catalog does not know yet) waits for what
    # it needs before it is dead-lettered.
    park_timeout_s: float = 3600.0
    # The largest record any stage may produce: the broker's (or topic's) max.message.bytes.
    # An output past it can never be written, so it is a dead letter, not a retry; the collector
    # derives its own body limit from it.
    max_message_bytes: int = 1_000_000
    # A message in flight when the stage died this many times in a row is quarantined (dead-
    # lettered as ``quarantined``) by the next start instead of handled (``common.guard``).
    max_crashes: int = 3
    # Tests only: a stage exits hard on a message containing this text, as a segfault would.
    test_crash_marker: str = ""
    # A Confluent-compatible schema registry (its API root: Confluent, Redpanda or Karapace as
    # is, Apicurio's ``.../apis/ccompat/v7``). Set: stages write the registry wire format and
    # read both; empty: Avro single-object encoding with the schemas of schemas/ alone.
    schema_registry_url: str = ""
    # ``user:password`` for the registry's HTTP basic auth; empty: none.
    schema_registry_basic_auth: str = ""
    # The HTTP collector (``da collector run``). Loopback unless told otherwise: a container
    # sets DA_COLLECTOR_HOST=0.0.0.0.
    collector_host: str = "127.0.0.1"
    collector_port: int = 8080
    # A body past this is refused (413) before it is read in full.
    collector_max_body_bytes: int = 1_000_000
    collector_max_batch: int = 1000
    # How long a post waits for the broker's acknowledgement before answering 503.
    collector_ack_timeout_s: float = 5.0
    # An event more than this far ahead of the collector's clock is rejected as from the future.
    collector_max_skew_s: float = 300.0
    # Events per second per application when its own limit is not set (`da apps add --rate`).
    collector_rate_limit: float = 1000.0
    # "reject" or "accept" an event whose (category, name) has no schema file.
    collector_unknown_types: str = "reject"
    # Directory of event-type schema files; empty: schemas/web-types/ shipped with the code.
    collector_event_types: str = ""
    # How often the collector re-reads the applications table (revocations take this long).
    collector_apps_refresh_s: float = 5.0

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
            raise SettingsError(
                f"{' and '.join(missing)} not set and no local stack found at "
                f"{stack_file(env)}: run `da stack up`, or set them to point at your services"
            )
        kwargs: dict[str, object] = {"kafka_bootstrap_servers": kafka, "database_url": db}
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
        if self.namespace and not _NAMESPACE_RE.match(self.namespace):
            raise SettingsError(
                f"DA_NAMESPACE={self.namespace!r}: use lower-case letters, digits, '-' or '_'"
            )
        if not _SCHEMA_RE.match(self.database_schema):
            raise SettingsError(
                f"DA_DATABASE_SCHEMA={self.database_schema!r} is not a plain SQL identifier"
            )
        for name in (
            "partitions",
            "replication_factor",
            "batch_size",
            "max_hops",
            "max_message_bytes",
            "max_crashes",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"DA_{name.upper()} must be at least 1")
        if not 0 < self.dead_letter_max_ratio <= 1:
            raise SettingsError("DA_DEAD_LETTER_MAX_RATIO must be in (0, 1]")
        if self.poll_timeout_s <= 0 or self.io_timeout_s <= 0 or self.park_timeout_s <= 0:
            raise SettingsError(
                "DA_POLL_TIMEOUT_S, DA_IO_TIMEOUT_S and DA_PARK_TIMEOUT_S must be positive"
            )
        if self.schema_registry_url and not self.schema_registry_url.startswith(
            ("http://", "https://")
        ):
            raise SettingsError("DA_SCHEMA_REGISTRY_URL must be an http:// or https:// URL")
        if self.schema_registry_basic_auth and ":" not in self.schema_registry_basic_auth:
            raise SettingsError("DA_SCHEMA_REGISTRY_BASIC_AUTH must be user:password")
        self._validate_collector()

    def _validate_collector(self) -> None:
        if self.collector_unknown_types not in ("reject", "accept"):
            raise SettingsError("DA_COLLECTOR_UNKNOWN_TYPES must be 'reject' or 'accept'")
        if not 0 < self.collector_port < 65536:
            raise SettingsError("DA_COLLECTOR_PORT must be a TCP port (1..65535)")
        for name in (
            "max_body_bytes",
            "max_batch",
            "ack_timeout_s",
            "rate_limit",
            "apps_refresh_s",
        ):
            if getattr(self, f"collector_{name}") <= 0:
                raise SettingsError(f"DA_COLLECTOR_{name.upper()} must be positive")
        if self.collector_max_skew_s < 0:
            raise SettingsError("DA_COLLECTOR_MAX_SKEW_S must not be negative")

    def group_id(self, stage: str) -> str:
        """Consumer group of a stage; every instance of the stage joins it."""
        base = f"da.{stage}"
        return f"{self.namespace}.{base}" if self.namespace else base
