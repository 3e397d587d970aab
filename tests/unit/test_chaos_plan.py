"""What a chaos run plans and reports, without running it: the fault kinds by cluster size, the
workflow part of its stream, and the broker count and recovery times in its record."""

from __future__ import annotations

import json
import random
from pathlib import Path

from cli.sample.workflow import generate as sample_workflow
from tests.chaos import brokers
from tests.chaos.faults import KINDS, kinds
from tests.chaos.mixed import Mix, make_stream
from tests.chaos.report import Report, record, render
from tests.ous_oracle import MOVES


def test_a_cluster_run_has_every_broker_fault_and_no_single_broker_restart() -> None:
    assert kinds(1) == KINDS and "broker" in KINDS
    three = kinds(3)
    assert "broker" not in three
    assert set(brokers.KINDS) <= set(three)
    assert {"kill", "scale", "postgres", "scale-in-db-down"} <= set(three)


def test_workflow_commands_keep_their_order_per_ous_and_parse_in_both_shapes() -> None:
    stream = make_stream(3, Mix(fulfillments=20, students=2, units=1, lessons=1, ous=40))
    sent = [m for d, m in stream.messages if d == "workflow"]
    assert len(sent) == len(stream.workflow) == stream.count("workflow") > 40 * 3
    shapes = {"text" if not m.value.startswith(b"{") else "json" for m in sent}
    assert shapes == {"text", "json"}  # both body shapes are in the mix
    # Interleaved with the other domains, each OUS's commands still go in the order generated
    # (what a sender keeps): the stream's commands, read back from the bytes sent, per OUS.
    read = [_parsed(m.value) for m in sent]
    assert read == stream.workflow
    # The sample's commands first, then each OUS's walk on: legal moves from ReadyForProcessing.
    generated = [c for c in sample_workflow(3, 40, reply_to=None) if c["key"] != "x"]
    assert [
        _parsed(json.dumps(c["value"]).encode()) if "value" in c else _text(c) for c in generated
    ] == stream.workflow[: len(generated)]
    walked = stream.workflow[len(generated) :]
    assert walked and {op for _, op, _ in walked} == {"set-state"}
    now: dict[str, str] = {}
    for uid, _, target in walked:
        assert target in MOVES[now.get(uid, "ReadyForProcessing")], (uid, now.get(uid), target)
        now[uid] = target or ""
    assert "Delivered" in now.values() and "ProcessingProblem" in {t for _, _, t in walked}


def _text(record: dict[str, str]) -> tuple[str, str, str | None]:
    return _parsed(record["text"].encode())


def _parsed(value: bytes) -> tuple[str, str, str | None]:
    if not value.startswith(b"{"):
        op, uid, rest = value.decode().split(" ", 2)
        return uid, op, rest
    body = json.loads(value)
    return body["ousUID"], body["operation"], body.get("value")


def test_the_record_shows_the_brokers_the_faults_by_kind_and_the_recovery(tmp_path: Path) -> None:
    report = Report(
        brokers=3,
        faults={"broker-pause": 2, "controller-kill": 1},
        recovery={"broker-pause: paused, out of the ISR": [9.5, 12.0, 30.1]},
    )
    table = render(report)
    assert "| Kafka brokers | 3 (KRaft, replication factor 3, min.insync.replicas 2) |" in table
    assert "broker-pause 2, controller-kill 1" in table
    assert "paused, out of the ISR: 3x, median 12, max 30.1" in table
    doc = tmp_path / "reliability.md"
    record(doc, "--brokers 3", table, report)
    assert "controller-kill 1" in doc.read_text() and "FAIL" in doc.read_text()


def test_broker_faults_pick_among_the_kinds_they_know() -> None:
    faults = brokers.BrokerFaults(Path("/nowhere"), "ns", random.Random(1), lambda _s: None)
    try:
        faults.inject("broker-melt")
    except (ValueError, RuntimeError) as exc:
        assert "broker-melt" in str(exc) or "quorum leader" in str(exc)
    else:
        raise AssertionError("an unknown broker fault was injected")
