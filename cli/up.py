"""``da up`` / ``da down``: the whole local pipeline, every registered stage, under a supervisor
that restarts what exits (``cli.supervise``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

from cli.supervise import instance_names, up_dir
from common.stack_paths import state_dir


def _pid_file() -> Path:
    return up_dir(state_dir()) / "supervisor.pid"


def running_supervisor() -> int | None:
    """The pid of the running supervisor, or None."""
    try:
        pid = int(_pid_file().read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def up(
    instances: int = typer.Option(1, min=1, help="Instances of each consuming stage."),
    web: bool = typer.Option(False, "--web", help="Also run the browser console (da web)."),
) -> None:
    """Start every stage (GEP, demux, the collector, each DEP) as supervised processes; each is
    restarted when it exits. Creates topics and tables first. Logs: <state dir>/up/. With --web
    the console (`da web`) runs under the same supervisor."""
    from cli.main import load_settings
    from cli.stages import db_migrate, topics_ensure

    if (pid := running_supervisor()) is not None:
        typer.echo(f"da: already up (supervisor pid {pid}); `da down` first", err=True)
        raise typer.Exit(2)
    load_settings()
    topics_ensure(partitions=0)
    db_migrate()
    directory = up_dir(state_dir())
    directory.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "cli.supervise", "--state", str(state_dir())]
    argv += ["--instances", str(instances), *(["--web"] if web else [])]
    with (directory / "supervisor.out").open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # it outlives this command and the terminal's ^C
        )
    _pid_file().write_text(f"{proc.pid}\n")
    names = [name for name, _, _ in instance_names(instances)] + (["web-0"] if web else [])
    typer.echo(f"up: {len(names)} instance(s) under supervisor pid {proc.pid}: {', '.join(names)}")
    typer.echo(f"logs in {directory}/ (supervisor.log: one line per start and restart)")
    typer.echo("watch it with `da status`; stop it with `da down`")


def down() -> None:
    """Stop the supervised pipeline: every instance finishes its batch and leaves its group."""
    pid = running_supervisor()
    if pid is None:
        typer.echo("down: nothing is up")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    else:
        typer.echo(f"da: supervisor {pid} still running after 120 s", err=True)
        raise typer.Exit(1)
    _pid_file().unlink(missing_ok=True)
    typer.echo("down: every instance stopped")


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
