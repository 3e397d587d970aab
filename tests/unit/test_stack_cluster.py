"""The three-broker stack's bookkeeping, which needs nothing running: its size, the refusal to
change it in place, which node is the active controller, and the replication it asks for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.stack import cluster
from cli.stack.kafka import Node, write_config
from common.kafka import min_insync_replicas
from common.settings import SettingsError


def test_a_new_stack_takes_the_size_asked_and_keeps_it(tmp_path: Path) -> None:
    assert cluster.choose_size(tmp_path, None) == 1
    assert cluster.choose_size(tmp_path, 3) == 3
    assert cluster.choose_size(tmp_path, None) == 3  # `da stack up` alone: as it was made
    assert [node.node_id for node in cluster.nodes(tmp_path)] == [1, 2, 3]


def test_data_made_for_one_size_is_not_started_with_another(tmp_path: Path) -> None:
    single = Node(tmp_path / "kafka")
    single.data.mkdir(parents=True)
    (single.data / "meta.properties").write_text("cluster.id=x\n")
    with pytest.raises(SettingsError, match="down --purge"):
        cluster.choose_size(tmp_path, 3)
    with pytest.raises(SettingsError, match="is not one of"):
        cluster.choose_size(tmp_path / "other", 2)


def _quorum(node: Node, leader: int, epoch: int) -> None:
    folder = node.data / "__cluster_metadata-0"
    folder.mkdir(parents=True)
    (folder / "quorum-state").write_text(json.dumps({"leaderId": leader, "leaderEpoch": epoch}))


def test_the_active_controller_is_the_newest_election_any_node_recorded(tmp_path: Path) -> None:
    cluster.choose_size(tmp_path, 3)
    one, two, three = cluster.nodes(tmp_path)
    assert cluster.active_controller(tmp_path) is None
    _quorum(one, leader=1, epoch=4)  # node 1 was killed while it led: it still says so
    _quorum(two, leader=3, epoch=5)
    _quorum(three, leader=3, epoch=5)
    assert cluster.active_controller(tmp_path) == 3


def test_three_replicas_want_two_in_sync_and_the_brokers_say_so(tmp_path: Path) -> None:
    assert [min_insync_replicas(n) for n in (1, 2, 3, 5)] == [1, 1, 2, 2]
    config = write_config(Node(tmp_path, 2), (9092, 9093), "1@h:1,2@h:2,3@h:3", replicas=3)
    lines = set(config.read_text().splitlines())
    assert {
        "node.id=2",
        "controller.quorum.voters=1@h:1,2@h:2,3@h:3",
        "default.replication.factor=3",
        "min.insync.replicas=2",
        "offsets.topic.replication.factor=3",
        "transaction.state.log.replication.factor=3",
        "transaction.state.log.min.isr=2",
    } <= lines
