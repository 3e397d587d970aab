"""``da``: the command-line entry point. Each sub-module registers its commands on ``app``."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from typing import Any

import psycopg
import typer
from confluent_kafka import KafkaException

from cli import help
from common.kafka import ServiceUnavailable
from common.settings import Settings, SettingsError

app = typer.Typer(
    name="da",
    help=help.root_help(),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    # Plain click help: paragraphs rewrapped, no boxes; cli/help.py sets plain metavars.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"da {importlib.metadata.version('da-pipeline')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


class _Redacting(logging.Formatter):
    """Masks every secret (Kafka passwords, the database password) in whatever a line holds,
    tracebacks included."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.settings = settings

    def format(self, record: logging.LogRecord) -> str:
        return self.settings.redact(super().format(record))


_loaded: list[Settings] = []  # what main() masks in its one-line error


def load_settings() -> Settings:
    """Settings for a command; logging is configured here so every stage logs alike."""
    settings = Settings.load()
    _loaded[:] = [settings]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting(settings))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    return settings


def _register() -> None:
    # Imported here, not at module top, so each sub-module can import ``app`` helpers freely.
    from cli import collector, dlq, emit, learning, replay, show, stack, stages, workflow

    stack.register(app)
    emit.register(app)
    stages.register(app)
    show.register(app)
    dlq.register(app)
    replay.register(app)
    learning.register(app)
    collector.register(app)
    workflow.register(app)


_register()


def command() -> Any:
    """The click command ``da`` runs: typer's, with examples and plain metavars."""
    built = typer.main.get_command(app)
    help.polish(built)
    return built


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _one_line(exc: BaseException) -> str | None:
    """The operator's one line for a known fault; None for a bug (which keeps its traceback)."""
    if isinstance(exc, SettingsError | ServiceUnavailable):
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
        command()(prog_name="da")
    except Exception as exc:
        line = _one_line(exc)
        if line is None:
            raise
        logging.getLogger("da").debug("the traceback behind the message below", exc_info=True)
        for settings in _loaded:
            line = settings.redact(line)
        typer.echo(f"da: {line}", err=True)
        sys.exit(2 if isinstance(exc, SettingsError) else 3)


if __name__ == "__main__":
    main()
