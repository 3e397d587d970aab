"""``da``: the command-line entry point. Each sub-module registers its commands on ``app``."""

from __future__ import annotations

import logging
import sys

import psycopg
import typer
from confluent_kafka import KafkaException

from common.kafka import ServiceUnavailable
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
    from cli import collector, dlq, emit, learning, replay, show, stack, stages

    stack.register(app)
    emit.register(app)
    stages.register(app)
    show.register(app)
    dlq.register(app)
    replay.register(app)
    learning.register(app)
    collector.register(app)


_register()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main() -> None:
    """Run the CLI; a known fault ends with one actionable line on stderr, never a traceback."""
    try:
        app()
    except (SettingsError, ServiceUnavailable) as exc:
        typer.echo(f"da: {exc}", err=True)
        sys.exit(2)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(
            f"da: PostgreSQL unreachable ({first}); start it with `da stack up` "
            "or set DA_DATABASE_URL",
            err=True,
        )
        sys.exit(2)
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
        typer.echo(f"da: {_first_line(exc)}; create the tables with `da db migrate`", err=True)
        sys.exit(2)
    except psycopg.Error as exc:
        typer.echo(f"da: PostgreSQL error: {_first_line(exc)}", err=True)
        sys.exit(2)
    except KafkaException as exc:
        typer.echo(f"da: Kafka error: {exc.args[0].str()}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
