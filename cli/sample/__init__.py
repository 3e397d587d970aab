"""``da sample``: seeded sample input that ``da emit`` replays, one module per kind.

- ``fulfillments``: a proctoring system's CSV export of fulfillment events;
- ``learning`` (sessions from ``plays``): a class's learning sessions in the platform's formats;
- ``workflow``: OUS workflow commands, both body shapes, with the mistakes a real stream has.

The same seed always gives the same file. Each command writes to standard output, or to the
file named by ``--to`` (``-o`` is the output format everywhere else in the CLI).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

ToOption = Annotated[
    Path | None,
    typer.Option("--to", metavar="FILE", help="Write the file here; default standard output."),
]
# `--output FILE` wrote the file before `-o/--output` meant the output format across the CLI;
# kept, unlisted, so that scripts written then still run.
OldOutputOption = Annotated[Path | None, typer.Option("--output", hidden=True)]


def deliver(to: Path | None, write: Callable[[TextIO], None], what: str) -> None:
    """``write`` the sample to standard output, or to ``to`` and say on stderr what it holds."""
    if to is None:
        write(sys.stdout)
        return
    with to.open("w", encoding="utf-8", newline="") as f:
        write(f)
    typer.echo(f"wrote {what} to {to}", err=True)


def write_jsonl(records: Iterable[Mapping[str, Any]], out: TextIO) -> None:
    """One raw message per line, as ``da emit`` reads them (``docs/formats.md``)."""
    for r in records:
        out.write(json.dumps(r, separators=(",", ":")) + "\n")


def register(app: typer.Typer) -> None:
    from cli.sample import fulfillments, learning, workflow

    sample_app = typer.Typer(help="Generate sample input data for `da emit`.", no_args_is_help=True)
    sample_app.command("fulfillments")(fulfillments.command)
    sample_app.command("learning")(learning.command)
    sample_app.command("workflow")(workflow.command)
    app.add_typer(sample_app, name="sample")
