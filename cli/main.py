"""``da``: the command-line entry point. Each sub-module registers its commands on ``app``."""

from __future__ import annotations

import logging
import sys

import psycopg
import typer
from confluent_kafka import KafkaException

from common.kafka import ServiceUnavailable
from common.schema_registry import RegistryRefused
from common.settings import Settings, SettingsError

app = typer.Typer(
    name="da",
    help="da-pipeline: raw events -> GEP -> demux -> discrete events -> DEPs -> PostgreSQL state.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def load_settings() -> Settings:
    """Settings for a command; logging is configured here so every stage logs alike."""
    settings = Settings.load()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return settings


def _register() -> None:
    # Imported here, not at module top, so each sub-module can import ``app`` helpers freely.
    from cli import collector, dlq, emit, learning, replay, schemas, show, stack, stages, workflow

    stack.register(app)
    emit.register(app)
    stages.register(app)
    show.register(app)
    dlq.register(app)
    replay.register(app)
    learning.register(app)
    collector.register(app)
    workflow.register(app)
    schemas.register(app)


_register()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _one_line(exc: BaseException) -> str | None:
    """The operator's one line for a known fault; None for a bug (which keeps its traceback)."""
    if isinstance(exc, SettingsError | ServiceUnavailable | RegistryRefused):
        return str(exc)
    if isinstance(exc, psycopg.OperationalError):
        return (
            f"PostgreSQL unreachable ({_first_line(exc)}); start it with `da stack up` "
            "or set DA_DATABASE_URL"
        )
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
        return f"{_first_line(exc)}; create the tables with `da db migrate`"
    if isinstance(exc, psycopg.Error):
        return f"PostgreSQL error: {_first_line(exc)}"
    if isinstance(exc, KafkaException):
        return f"Kafka error: {exc.args[0].str()}"
    return None


def main() -> None:
    """Run the CLI; a known fault ends with one actionable line on stderr, never a traceback
    (``DA_LOG_LEVEL=DEBUG`` logs it too, for whoever investigates)."""
    try:
        app()
    except Exception as exc:
        line = _one_line(exc)
        if line is None:
            raise
        logging.getLogger("da").debug("the traceback behind the message below", exc_info=True)
        typer.echo(f"da: {line}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
