"""An initial load's completion marks and progress (``cli.load_model``): a topic is marked only
when every stage writing it is done, a stage is done only at its marks, the percentage is 100
only when every stage is done, and the load's stages come from the registry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cli.load_model import LoadGraph, crossed, graph, progress
from common.loads import Key, Load
from common.status_model import Member, Partition, StageSample
from common.topics import Topics

T0 = datetime(2026, 11, 30, tzinfo=UTC)
G = LoadGraph(
    stages=("gep", "demux", "dep.a", "dep.b"),
    short={"gep": "gep", "demux": "demux", "dep.a": "a", "dep.b": "b"},
    inputs={
        "gep": frozenset({"in"}),
        "demux": frozenset({"canon"}),
        "dep.a": frozenset({"sink"}),
        "dep.b": frozenset({"sink", "rolled"}),
    },
    writers={
        "in": frozenset(),
        "canon": frozenset({"gep"}),
        "sink": frozenset({"demux"}),
        "rolled": frozenset({"dep.a"}),
    },
    ingest="in",
)
RUNNING = (Member("x:1", "h", ()),)


def sample(stage: str, store: bool, **at: tuple[int, int]) -> StageSample:
    """``topic=(position, end)`` per topic (two partitions each, the same numbers)."""
    parts = tuple(
        Partition(topic, p, end, None if store else pos, pos if store else None, store)
        for topic, (pos, end) in at.items()
        for p in (0, 1)
    )
    return StageSample(stage, parts, RUNNING)


def ends(**topics: int) -> dict[Key, int]:
    return {(t, p): e for t, e in topics.items() for p in (0, 1)}


def test_marks_follow_the_writers_down_the_graph() -> None:
    marks = ends(**{"in": 100})
    samples = {
        "gep": sample("gep", False, **{"in": (100, 120)}),  # past its mark (live traffic)
        "demux": sample("demux", False, canon=(50, 90)),
        "dep.a": sample("dep.a", True, sink=(0, 10)),
        "dep.b": sample("dep.b", True, sink=(0, 10), rolled=(0, 0)),
    }
    now = {"canon": 95, "sink": 12, "rolled": 3}
    new = crossed(G, marks, samples, set(), lambda t: ends(**{t: now[t]}))
    assert new == ends(canon=95)  # read now, after GEP was seen done; demux is not yet
    marks |= new
    samples["demux"] = sample("demux", False, canon=(95, 99))
    # dep.a keeps emitted DEs in its outbox: its output is not marked although it is at its mark
    samples["dep.a"] = sample("dep.a", True, sink=(12, 12))
    assert crossed(G, marks, samples, {"dep.a"}, lambda t: ends(**{t: now[t]})) == ends(sink=12)
    marks |= ends(sink=12)
    assert crossed(G, marks, samples, set(), lambda t: ends(**{t: now[t]})) == ends(rolled=3)


def test_a_load_is_done_only_when_every_stage_is_at_its_marks() -> None:
    load = Load(1, "big.csv", 1000, 1000, T0, T0 + timedelta(seconds=5), None, ends(**{"in": 0}))
    marks = ends(**{"in": 500, "canon": 600, "sink": 700, "rolled": 10})
    samples = {
        "gep": sample("gep", False, **{"in": (500, 500)}),
        "demux": sample("demux", False, canon=(600, 600)),
        "dep.a": sample("dep.a", True, sink=(700, 700)),
        "dep.b": sample("dep.b", True, sink=(700, 700), rolled=(9, 10)),
    }
    late = progress(G, load, marks, samples, set(), T0 + timedelta(seconds=40))
    assert [(s.stage, s.done, s.partitions_done, s.partitions) for s in late.stages] == [
        ("gep", True, 2, 2),
        ("demux", True, 2, 2),
        ("a", True, 2, 2),
        ("b", False, 2, 4),
    ]
    assert not late.done and late.percent == 99 and late.eta_s is not None
    assert late.summary().startswith(
        "initial load 99 %: gep done, demux done, b 2/4 partitions, 1 DEP done, ETA"
    )
    samples["dep.b"] = sample("dep.b", True, sink=(700, 700), rolled=(10, 10))
    done = progress(G, load, marks, samples, set(), T0 + timedelta(seconds=41))
    assert done.done and done.percent == 100 and done.to_json()["done"] is True
    # Once recorded done, a stage re-reading its input (a replay) does not undo it.
    rewound = samples | {"dep.b": sample("dep.b", True, sink=(0, 700), rolled=(0, 10))}
    kept = replace(load, done_at=T0 + timedelta(seconds=42))
    assert progress(G, kept, marks, rewound, set(), T0 + timedelta(seconds=50)).done
    # Not before the file is sent, whatever the stages have read; until then what has arrived
    # is scaled by the share sent (the stages have read all of 40 %).
    unsent = Load(2, "big.csv", 1000, 400, T0, None, None, ends(**{"in": 0}))
    early = progress(G, unsent, ends(), samples, set(), T0 + timedelta(seconds=4))
    assert not early.done and early.percent < 100
    assert early.summary().startswith(
        "initial load 40 % (sending 400/1,000): gep waiting, demux waiting, 2 DEPs waiting"
    )


def test_the_registry_gives_the_loads_stages() -> None:
    topics = Topics("t")
    g = graph(topics)
    assert g.stages[:3] == ("gep", "demux", "dep.fulfillment-state")
    assert g.inputs["gep"] == {topics.ingest}
    assert g.writers[topics.canonical] == {"gep"}
    assert g.writers[topics.sink_bucket("dep", "collection.score")] == {"dep.collection-rollup"}
    assert topics.dead_letter("gep") in g.inputs["dep.collector-errors"]
    # the dispatcher reads and writes its own topic: its writes are not waited for
    assert g.writers[topics.sink_bucket("dep", "ous")] == {"dep.ous-lifecycle"}
