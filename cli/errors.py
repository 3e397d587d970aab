"""The one line, and the exit code, a command ends with when it fails.

| code | meaning |
|---|---|
| 0 | done |
| 1 | the work failed (bad rows, refused deliveries, a schema refused), or an unexpected error |
| 2 | usage or configuration error: an option, an input file, a DA_* setting |
| 3 | a service unreachable or unavailable (or refusing our credentials) |
| 130 | interrupted (Ctrl-C) |

``da status`` is a health check with the monitoring convention: 0 OK, 1 warning, 2 critical, 3
unknown.

Every line names the setting or input at fault and what to do about it.
"""

from __future__ import annotations

import psycopg
from confluent_kafka import KafkaException

from common.kafka import ServiceUnavailable
from common.schema_registry import RegistryRefused
from common.settings import SettingsError

DONE, WORK_FAILED, USAGE, UNAVAILABLE = 0, 1, 2, 3


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _after_fatal(text: str) -> str:
    # libpq: 'connection failed: connection to server at "h", port p failed: FATAL:  why'
    return text.rsplit("FATAL:", 1)[-1].strip()


def _postgres_connection(exc: psycopg.OperationalError) -> tuple[int, str]:
    text = _first_line(exc)
    why = _after_fatal(text)
    if "does not exist" in why and why.startswith("database"):
        return USAGE, (
            f"DA_DATABASE_URL names a missing database: {why}; create it (`createdb`) or fix "
            "the URL"
        )
    if why.startswith("role") or "authentication failed" in why:
        return UNAVAILABLE, (
            f"PostgreSQL refused the login ({why}); check the user and password in DA_DATABASE_URL"
        )
    if text.startswith("connection is bad:") or ("invalid" in text and "option" in text):
        return USAGE, f"DA_DATABASE_URL is malformed ({text.removeprefix('connection is bad: ')})"
    return UNAVAILABLE, (
        f"PostgreSQL unreachable ({text}); start it with `da stack up` or set DA_DATABASE_URL"
    )


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line (without the ``da: `` prefix) for ``exc``."""
    if isinstance(exc, SettingsError):
        return USAGE, str(exc)
    if isinstance(exc, ServiceUnavailable):
        return UNAVAILABLE, str(exc)
    if isinstance(exc, RegistryRefused):
        return WORK_FAILED, str(exc)  # e.g. an incompatible schema: retrying cannot help
    if isinstance(exc, psycopg.OperationalError):
        return _postgres_connection(exc)
    if isinstance(exc, psycopg.ProgrammingError) and "connection info string" in str(exc):
        return USAGE, f"DA_DATABASE_URL is malformed ({_first_line(exc)})"
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
        return USAGE, f"{_first_line(exc)}; create the tables with `da db migrate`"
    if isinstance(exc, psycopg.Error):
        return WORK_FAILED, f"PostgreSQL error: {_first_line(exc)}"
    if isinstance(exc, KafkaException):
        return UNAVAILABLE, f"Kafka error: {exc.args[0].str()}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return USAGE, f"{exc.filename}: {exc.strerror}"  # a path given on the command line
    return WORK_FAILED, (
        f"unexpected error ({type(exc).__name__}: {_first_line(exc)}); "
        "DA_LOG_LEVEL=DEBUG shows the traceback"
    )
