"""The console's vendored chart library is the pinned release, byte for byte, and nothing the
console serves points outside the host (it must work air-gapped)."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

import pytest

from web.app import STATIC

VENDOR = STATIC / "vendor"
PINS = tomllib.loads((VENDOR / "VENDORED.toml").read_text())


@pytest.mark.parametrize("name", sorted(PINS["uplot"]["sha256"]))
def test_every_vendored_file_matches_its_pinned_sha256(name: str) -> None:
    digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
    assert digest == PINS["uplot"]["sha256"][name], f"{name} is not the pinned file"


def test_the_library_is_the_pinned_version_and_nothing_unpinned_is_vendored() -> None:
    head = (VENDOR / "uPlot.iife.min.js").read_text()[:200]
    assert f"(v{PINS['uplot']['version']})" in head
    shipped = {p.name for p in VENDOR.iterdir()} - {"VENDORED.toml"}
    assert shipped == set(PINS["uplot"]["sha256"])


def _served() -> list[Path]:
    web = STATIC.parent
    return [p for p in [*STATIC.rglob("*"), *web.rglob("*.py")] if p.is_file()]


def test_nothing_served_loads_from_another_host() -> None:
    # A URL in a comment is harmless; one in src=, href=, url(), fetch or EventSource is not.
    loads = re.compile(r"""(src=|href=|url\(|fetch\(|EventSource\()\s*["']?(https?:)?//""")
    for path in _served():
        text = path.read_text(errors="replace")
        assert not loads.search(text), f"{path} loads something from another host"
    assert "fonts.googleapis" not in "".join(p.read_text(errors="replace") for p in _served())
