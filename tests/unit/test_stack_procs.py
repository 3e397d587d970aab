"""Whether a local-stack process runs, read from /proc: a command line that reads empty for a
moment (a process inside its execve, or exiting) is read again, not taken for the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.stack import procs


def test_an_empty_command_line_for_a_moment_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = Path.read_bytes
    reads: list[str] = []

    def blank_once(self: Path) -> bytes:
        if self.name == "cmdline" and not reads:
            reads.append(str(self))
            return b""  # what a process in the middle of its execve shows
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", blank_once)
    assert procs.process_running(os.getpid(), "pytest")
    assert reads  # the first read was the empty one


def test_a_process_that_has_ended_is_not_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not procs.process_running(child.pid, "python")
    assert not procs.process_running(os.getpid(), "no-such-marker-in-this-command-line")
