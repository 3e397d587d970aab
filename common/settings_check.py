"""The checks ``Settings.validate`` runs: every setting in range and well formed, else a
``SettingsError`` that names it and says what to use."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from common.settings import Settings, SettingsError

_NAMESPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def check(settings: Settings) -> None:
    """Every setting in range and well formed (``Settings.validate``)."""
    named = [(f"DA_DEP_{n}_DATABASE_URL", url) for n, url in settings.dep_database_urls]
    for variable, url in [("DA_DATABASE_URL", settings.database_url), *named]:
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise SettingsError(
                f"{variable} is malformed ({str(exc).strip()}); "
                "use postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE"
            ) from None
    if settings.log_level.upper() not in _LOG_LEVELS:
        raise SettingsError(
            f"DA_LOG_LEVEL={settings.log_level!r}: use one of {', '.join(_LOG_LEVELS)}"
        )
    if settings.namespace and not _NAMESPACE_RE.match(settings.namespace):
        raise SettingsError(
            f"DA_NAMESPACE={settings.namespace!r}: use lower-case letters, digits, '-' or '_'"
        )
    if not _SCHEMA_RE.match(settings.database_schema):
        raise SettingsError(
            f"DA_DATABASE_SCHEMA={settings.database_schema!r} is not a plain SQL identifier"
        )
    for name in (
        "partitions",
        "replication_factor",
        "batch_size",
        "max_hops",
        "max_message_bytes",
        "max_crashes",
    ):
        if getattr(settings, name) < 1:
            raise SettingsError(f"DA_{name.upper()} must be at least 1")
    if not 0 < settings.dead_letter_max_ratio <= 1:
        raise SettingsError("DA_DEAD_LETTER_MAX_RATIO must be in (0, 1]")
    if settings.poll_timeout_s <= 0 or settings.io_timeout_s <= 0 or settings.park_timeout_s <= 0:
        raise SettingsError(
            "DA_POLL_TIMEOUT_S, DA_IO_TIMEOUT_S and DA_PARK_TIMEOUT_S must be positive"
        )
    if settings.batch_linger_s < 0:
        raise SettingsError("DA_BATCH_LINGER_S must not be negative")
    if min(settings.loop_ttl_s, settings.unassigned_max_s, settings.unhealthy_exit_s) <= 0:
        raise SettingsError(
            "DA_LOOP_TTL_S, DA_UNASSIGNED_MAX_S and DA_UNHEALTHY_EXIT_S must be positive"
        )
    if not -1 <= settings.metrics_port < 65536:
        raise SettingsError("DA_METRICS_PORT must be a TCP port, 0 (off) or -1 (any free)")
    if settings.schema_registry_url and not settings.schema_registry_url.startswith(
        ("http://", "https://")
    ):
        raise SettingsError("DA_SCHEMA_REGISTRY_URL must be an http:// or https:// URL")
    if settings.schema_registry_basic_auth and ":" not in settings.schema_registry_basic_auth:
        raise SettingsError("DA_SCHEMA_REGISTRY_BASIC_AUTH must be user:password")
    _check_collector(settings)
    if settings.clock not in ("wall", "event"):
        raise SettingsError("DA_CLOCK must be 'wall' or 'event'")
    if not 0 < settings.web_port < 65536:
        raise SettingsError("DA_WEB_PORT must be a TCP port (1..65535)")
    if settings.wait_sla_s <= 0:
        raise SettingsError("DA_WAIT_SLA_S must be positive")


def _check_collector(settings: Settings) -> None:
    if settings.collector_unknown_types not in ("reject", "accept"):
        raise SettingsError("DA_COLLECTOR_UNKNOWN_TYPES must be 'reject' or 'accept'")
    if not 0 < settings.collector_port < 65536:
        raise SettingsError("DA_COLLECTOR_PORT must be a TCP port (1..65535)")
    for name in (
        "max_body_bytes",
        "max_batch",
        "ack_timeout_s",
        "rate_limit",
        "apps_refresh_s",
    ):
        if getattr(settings, f"collector_{name}") <= 0:
            raise SettingsError(f"DA_COLLECTOR_{name.upper()} must be positive")
    if settings.collector_max_skew_s < 0:
        raise SettingsError("DA_COLLECTOR_MAX_SKEW_S must not be negative")
