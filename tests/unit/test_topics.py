from __future__ import annotations

import pytest

from common.errors import InvalidEvent
from common.topics import Topics, de_bucket


@pytest.mark.parametrize(
    "name,bucket",
    [
        ("usage.resource.timespent", "resource.timespent"),
        ("usage.assessment.score", "assessment.score"),
        ("fulfillment.launch_start", "fulfillment"),
        ("class.updated", "class"),
    ],
)
def test_buckets_follow_the_naming_convention(name: str, bucket: str) -> None:
    assert de_bucket(name) == bucket


@pytest.mark.parametrize("name", ["usage.score", "usage.a.b.c", "a.b.c", "Fulfillment.X", "x"])
def test_malformed_de_names_are_invalid(name: str) -> None:
    with pytest.raises(InvalidEvent):
        de_bucket(name)


def test_names_and_namespace() -> None:
    assert Topics().sink("demux", "fulfillment.welcome") == "org.gooru.da.sink.demux.fulfillment"
    assert Topics("t1").sink("dep", "usage.collection.score") == (
        "t1.org.gooru.da.sink.dep.collection.score"
    )
    assert Topics().ingest == "org.gooru.da.ingest"
    assert Topics("t1").dead_letter("gep") == "t1.org.gooru.da.dlq.gep"
