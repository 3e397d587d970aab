"""Every command's help: an example that runs that command, plain metavars, no leftover
defaults beside a setting's, and nothing the project prints or documents cites a document a
user never sees."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.help import EXAMPLES
from cli.main import command

REPO = Path(__file__).resolve().parents[2]
# Documents outside the project (design notes, format notes kept beside it) must not be cited.
CITATION = re.compile(
    r"\bseed \d{3}|\bseed's\b|\bthe seed\b|\bArchimedes\b|shared/formats|\.\./shared|prototype",
    re.IGNORECASE,
)
SHIPPED = ["cli", "common", "gep", "demux", "dep", "collector", "collector_client", "deploy"]


def _leaves(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    children = getattr(cmd, "commands", None)
    if children is None:
        yield path, cmd
        return
    for name, child in children.items():
        yield from _leaves(child, (*path, name))


def _help(cmd: Any, path: tuple[str, ...]) -> str:
    ctx = cmd.make_context(" ".join(("da", *path)), [], resilient_parsing=True)
    return str(cmd.get_help(ctx))


ROOT = command()
LEAVES = dict(_leaves(ROOT))


def test_the_root_help_spells_out_the_stages_and_the_exit_codes() -> None:
    text = " ".join(_help(ROOT, ()).split())
    for words in ("GEP (global event processor)", "discrete events (DEs)", "DEPs (discrete event"):
        assert words in text
    for code in ("0 done", "1 the work failed", "2 usage or configuration", "3 a service"):
        assert code in text


def test_every_command_has_an_example_and_every_example_a_command() -> None:
    assert set(EXAMPLES) == {" ".join(path) for path in LEAVES}


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_help_renders_cleanly(path: tuple[str, ...]) -> None:
    text = _help(LEAVES[path], path)
    assert "Example:" in text and f"da {' '.join(path)}" in text.split("Example:")[1]
    for leftover in ("<bool>", "<str>", "<int>", "<float", "{", "[default: 0]", "[default: 0.0]"):
        assert leftover not in text, f"{leftover!r} in the help of da {' '.join(path)}"
    assert not CITATION.search(text)


def _documents() -> Iterator[Path]:
    yield REPO / "README.md"
    yield from (REPO / "docs").glob("*.md")
    yield from (REPO / "schemas").rglob("*.md")
    yield from (REPO / "schemas").rglob("*.avsc")
    for folder in SHIPPED:
        yield from (p for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".md", ".toml"))


def test_nothing_cites_a_document_users_never_see() -> None:
    cited = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path in _documents()
        for match in CITATION.finditer(path.read_text())
    ]
    assert cited == []


def test_the_readme_and_the_demo_put_da_on_the_path_alike() -> None:
    activate = "source .venv/bin/activate"
    assert activate in (REPO / "README.md").read_text()
    # The demo's last words: how to put da on the path, then the console's address.
    last = (REPO / "deploy" / "demo.sh").read_text().splitlines()[-4:]
    assert any(activate in line for line in last)
    assert "/fulfillments" in last[-1]


def test_o_is_the_output_format_wherever_a_command_takes_it() -> None:
    takes_o = {
        " ".join(path): cmd for path, cmd in LEAVES.items() for p in cmd.params if "-o" in p.opts
    }
    assert "fulfillments" in takes_o and "status" in takes_o
    for name, cmd in takes_o.items():
        (param,) = (p for p in cmd.params if "-o" in p.opts)
        assert list(param.type_descriptor.choices) == ["table", "json", "csv"], f"-o of da {name}"


def _example_args(example: str) -> list[str]:
    """The arguments after ``da`` in an example line: no environment assignments, no shell
    around it (``export $(...)``, ``|| ...``, ``# ...``)."""
    if "$(" in example:
        example = example.split("$(", 1)[1].split(")", 1)[0]
    words = shlex.split(example, comments=True)
    for stop in ("||", "|", "&&", ";"):
        if stop in words:
            words = words[: words.index(stop)]
    while words and "=" in words[0]:
        words = words[1:]
    assert words[0] == "da", example
    return words[1:]


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_every_example_parses(path: tuple[str, ...]) -> None:
    args = _example_args(EXAMPLES[" ".join(path)])
    assert tuple(args[: len(path)]) == path
    # Parsing checks every option and argument of the example (the command does not run).
    LEAVES[path].make_context(" ".join(("da", *path)), args[len(path) :])


def _documented_command_lines() -> Iterator[tuple[str, str]]:
    """Every ``da ...`` command in a code block of the README and docs/, optional parts (``[...]``)
    left out: (where, command)."""
    for path in [REPO / "README.md", REPO / "deploy" / "README.md", *(REPO / "docs").glob("*.md")]:
        in_block = False
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("```"):
                in_block = not in_block
                continue
            code = re.sub(r"\[[^]]*\]", "", line.split(" #", 1)[0].rstrip("\\"))
            for part in re.split(r"\s(?:\|\|?|&&|&)\s|;|&$", code) if in_block else []:
                if re.match(r"^\s*(\w+=\S+\s+)*da\s", part):
                    yield f"{path.relative_to(REPO)}:{n}", part.strip().rstrip("&").strip()


def test_every_command_the_docs_show_parses() -> None:
    wrong = []
    for where, line in _documented_command_lines():
        words = _example_args(line)
        cmd, taken = ROOT, 0
        while (
            getattr(cmd, "commands", None) and taken < len(words) and words[taken] in cmd.commands
        ):
            cmd, taken = cmd.commands[words[taken]], taken + 1
        if getattr(cmd, "commands", None):
            continue  # a group: `da --help`, `da stack up | status | down`
        try:
            cmd.make_context("da", words[taken:])
        except typer.BadParameter:
            pass  # a placeholder where a number goes (`--ous N`): the option itself exists
        except Exception as exc:  # click's usage error: an unknown option, an extra argument
            wrong.append(f"{where}: `{line}`: {exc}")
    assert wrong == []
