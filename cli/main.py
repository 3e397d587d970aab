"""``da``: the command-line entry point. Each sub-module registers its commands on ``app``."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from typing import Any

import typer

from cli import errors, help
from common.settings import Settings

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
    from common.stages import check_dep_databases

    settings = Settings.load()
    _loaded[:] = [settings]
    check_dep_databases(settings)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting(settings))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    return settings


def _register() -> None:
    # Imported here, not at module top, so each sub-module can import ``app`` helpers freely.
    from cli import (
        collector,
        deploy,
        dlq,
        emit,
        learning,
        load,
        replay,
        sample,
        schemas,
        show,
        stages,
        status,
        up,
        web,
        workflow,
    )
    from cli.stack import commands as stack_commands

    stack_commands.register(app)
    emit.register(app)
    sample.register(app)
    load.register(app)
    stages.register(app)
    show.register(app)
    dlq.register(app)
    replay.register(app)
    learning.register(app)
    collector.register(app)
    workflow.register(app)
    up.register(app)
    status.register(app)
    schemas.register(app)
    deploy.register(app)
    web.register(app)


_register()


def command() -> Any:
    """The click command ``da`` runs: typer's, with examples and plain metavars."""
    built = typer.main.get_command(app)
    help.polish(built)
    return built


def _usage_error(exc: Exception) -> bool:
    """Print click's usage error as one line (with where to find help); False for other errors."""
    if not hasattr(exc, "format_message") or getattr(exc, "exit_code", None) != errors.USAGE:
        return False
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        typer.echo(ctx.get_help(), err=True)  # `da` or `da dlq` alone: the help, as asked
        return True
    where = ctx.command_path if ctx is not None else "da"
    typer.echo(f"{where}: {exc.format_message()} (see `{where} -h`)", err=True)
    return True


def main() -> None:
    """Run the CLI; a known fault ends with one actionable line on stderr, never a traceback
    (``DA_LOG_LEVEL=DEBUG`` logs it too, for whoever investigates)."""
    try:
        code = command().main(prog_name="da", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except Exception as exc:
        if _usage_error(exc):
            sys.exit(errors.USAGE)
        code, line = errors.classify(exc)
        logging.getLogger("da").debug("the traceback behind the message below", exc_info=True)
        for settings in _loaded:
            line = settings.redact(line)
        typer.echo(f"da: {line}", err=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
