"""Fetching the stack's Java servers from Maven Central, once, into a cache every checkout shares.

A marker written after a complete fetch makes later fetches free; it holds what was fetched
(a pom's hash, an artifact's coordinates), so asking for something else fetches again. A lock
keeps two concurrent callers (``make deps`` and a test session, say) from fetching over each
other. ``python -m cli.stack fetch`` pre-fetches everything (``make deps`` does).
"""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cli.stack.procs import require
from common.kafka import ServiceUnavailable


@dataclass(frozen=True)
class Fetch:
    """One thing to fetch with Maven into ``home / target``."""

    what: str  # "Kafka 4.1.1 jars": for the messages
    home: Path
    target: str  # the directory under ``home`` the caller uses
    stamp: str  # what the marker holds: a different stamp fetches again
    goal: tuple[str, ...]  # Maven arguments; the output directory is appended
    expect: str  # a glob that matches in a complete result
    unpack: bool = False  # the goal downloads a .tar.gz whose contents are the result
    pom: Path | None = None


def fetch_once(fetch: Fetch) -> Path:
    """Run ``fetch`` unless its marker says it is done; returns ``home / target``."""
    result, marker = fetch.home / fetch.target, fetch.home / f"{fetch.target}.complete"
    if _done(marker, fetch.stamp):
        return result
    fetch.home.mkdir(parents=True, exist_ok=True)
    with (fetch.home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _done(marker, fetch.stamp):
            return result
        mvn = require("mvn")
        download, staging = fetch.home / "download", fetch.home / f"{fetch.target}.partial"
        for leftover in (download, staging):
            shutil.rmtree(leftover, ignore_errors=True)
        print(f"fetching {fetch.what} into {result} (once) ...", file=sys.stderr)
        pom = ["-f", str(fetch.pom)] if fetch.pom else []
        cmd = [mvn, "-B", *pom, *fetch.goal, f"-DoutputDirectory={download}"]
        returncode, lines = _run_showing_downloads(cmd, fetch.home)
        if returncode == 0 and fetch.unpack:
            for archive in sorted(download.glob("*.tar.gz"))[:1]:
                with tarfile.open(archive) as opened:
                    opened.extractall(staging, filter="data")
        elif returncode == 0:
            download.rename(staging)
        if returncode != 0 or not any(staging.glob(fetch.expect)):
            errors = [line for line in lines if line.startswith("[ERROR]")] or lines
            reason = errors[-1] if errors else f"exit code {returncode}"
            raise ServiceUnavailable(
                f"could not fetch the {fetch.what} with Maven ({reason}); "
                "check access to Maven Central and rerun `make deps`"
            )
        shutil.rmtree(result, ignore_errors=True)
        staging.rename(result)
        shutil.rmtree(download, ignore_errors=True)
        marker.write_text(fetch.stamp + "\n")
    return result


def _done(marker: Path, stamp: str) -> bool:
    return marker.is_file() and marker.read_text().strip() == stamp


_DOWNLOADED = re.compile(r"^Downloaded from \S+: \S+ \(([\d.]+) (B|kB|MB|GB) at ")
_UNITS = {"B": 1, "kB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000}


def downloaded_bytes(line: str) -> int | None:
    """The size of a file Maven reports downloaded ("Downloaded from central: URL (1.2 MB at
    ...)"); None for any other line."""
    found = _DOWNLOADED.match(line)
    return int(float(found.group(1)) * _UNITS[found.group(2)]) if found else None


def _run_showing_downloads(cmd: list[str], cwd: Path) -> tuple[int, list[str]]:
    """Run Maven, showing how many files and megabytes it has downloaded so far (one line,
    rewritten on a terminal; every 10 files otherwise). Returns its status and output lines."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
    )
    lines: list[str] = []
    files, size = 0, 0
    tty = sys.stderr.isatty()
    assert proc.stdout is not None  # piped above
    for line in proc.stdout:
        lines.append(line.rstrip())
        got = downloaded_bytes(line)
        if got is None:
            continue
        files, size = files + 1, size + got
        if tty or files % 10 == 0:
            text = f"  downloaded {files} files, {size / 1e6:.1f} MB"
            print(f"\r{text}" if tty else text, end="" if tty else "\n", file=sys.stderr)
    returncode = proc.wait()
    if files:
        print(f"{chr(13) if tty else ''}  downloaded {files} files, {size / 1e6:.1f} MB: done",
              file=sys.stderr)  # fmt: skip
    return returncode, lines
