"""The private PostgreSQL's runtime settings, which need nothing running to check."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.stack.postgres import _runtime_conf


def test_a_relative_state_directory_gives_an_absolute_socket_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The postmaster resolves the setting against its data directory, not the caller's: a
    # relative one made a restart by `make chaos` (work dir .da/chaos) fail to start.
    monkeypatch.chdir(tmp_path)
    conf = _runtime_conf(5432, Path(".da/chaos/stack/pg/run"))
    assert f"unix_socket_directories = '{tmp_path.resolve()}/.da/chaos/stack/pg/run'" in conf
