"""``da sample fulfillments | learning | workflow``: the committed samples are what the commands
print, ``--to FILE`` writes the same bytes, and ``-o`` is not taken for a file (it is the output
format everywhere else)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sample"
KINDS = [
    ("fulfillments", "fulfillments.csv"),
    ("learning", "learning.jsonl"),
    ("workflow", "workflow.jsonl"),
]


@pytest.mark.parametrize(("kind", "committed"), KINDS)
def test_the_committed_sample_is_the_command_s_output(kind: str, committed: str) -> None:
    printed = CliRunner().invoke(app, ["sample", kind])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == (SAMPLES / committed).read_text(encoding="utf-8")


@pytest.mark.parametrize(("kind", "committed"), KINDS)
def test_to_writes_the_file_and_says_so(kind: str, committed: str, tmp_path: Path) -> None:
    target = tmp_path / committed
    written = CliRunner().invoke(app, ["sample", kind, "--to", str(target)])
    assert written.exit_code == 0, written.output
    assert written.stdout == ""
    assert f"to {target}" in written.stderr
    assert target.read_bytes() == (SAMPLES / committed).read_bytes()
    # The option the README once showed still works for scripts, unlisted in the help.
    old = tmp_path / "old"
    assert CliRunner().invoke(app, ["sample", kind, "--output", str(old)]).exit_code == 0
    assert old.read_bytes() == target.read_bytes()
    shown = CliRunner().invoke(app, ["sample", kind, "-h"]).stdout
    assert "--to FILE" in shown and "--output" not in shown


def test_o_is_refused_as_a_usage_error(tmp_path: Path) -> None:
    refused = CliRunner().invoke(app, ["sample", "fulfillments", "-o", str(tmp_path / "x.csv")])
    assert refused.exit_code == 2
    assert not (tmp_path / "x.csv").exists()
