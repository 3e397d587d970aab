"""The first ``da stack up`` shows Maven's downloads as they come: files and megabytes so far."""

from __future__ import annotations

import pytest

from cli.stack.fetch import downloaded_bytes

URL = "https://repo.maven.apache.org/maven2/org/apache/kafka/kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar"


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (f"Downloaded from central: {URL} (6.7 MB at 3.1 MB/s)", 6_700_000),
        (f"Downloaded from central: {URL} (512 B at 10 kB/s)", 512),
        (f"Downloaded from central: {URL} (33 kB at 120 kB/s)", 33_000),
        (f"Downloading from central: {URL}", None),
        ("[INFO] BUILD SUCCESS", None),
    ],
)
def test_downloaded_sizes_are_read_from_mavens_lines(line: str, size: int | None) -> None:
    assert downloaded_bytes(line) == size
