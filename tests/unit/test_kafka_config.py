"""``common.kafka`` applies DA_KAFKA_* to every client it builds, and a property librdkafka
refuses is a settings error naming the variable (building a client connects to nothing)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.kafka import (
    make_admin,
    make_consumer,
    make_producer,
    producer_config,
    request_timeout_ms,
)
from common.settings import Settings, SettingsError


def _settings(**properties: str) -> Settings:
    return Settings("127.0.0.1:1", "postgresql://x@127.0.0.1:1/da",
                    kafka_properties=tuple(properties.items()))  # fmt: skip


def test_every_client_gets_the_properties() -> None:
    settings = _settings(**{"client.id": "shop-7"})
    assert producer_config(settings)["client.id"] == "shop-7"
    for client in (make_producer(settings), make_admin(settings)):
        del client  # built without complaint: librdkafka accepted the property
    make_consumer(settings, "g").close()


def test_an_unknown_property_names_its_variable() -> None:
    with pytest.raises(SettingsError, match=r"^DA_KAFKA_SASL_MECHANISMZ: .*No such configuration"):
        make_producer(_settings(**{"sasl.mechanismz": "PLAIN"}))


def test_a_request_to_a_hung_broker_is_sent_again_before_its_deadline() -> None:
    # A paused broker keeps its connection open: only the request timeout ends the wait, and
    # the messages must still have time left then to go to the partition's new leader.
    config = producer_config(replace(_settings(), io_timeout_s=30.0))
    assert config["message.timeout.ms"] == 30_000
    assert config["socket.timeout.ms"] * 3 <= config["message.timeout.ms"]


def test_the_environment_may_set_the_request_timeout() -> None:
    config = producer_config(_settings(**{"socket.timeout.ms": "7000"}))
    assert config["socket.timeout.ms"] == "7000"
    make_producer(_settings(**{"socket.timeout.ms": "7000"}))


@given(st.integers(min_value=1_000, max_value=3_600_000))
def test_a_request_times_out_within_its_delivery_deadline(deadline_ms: int) -> None:
    timeout = request_timeout_ms(deadline_ms)
    assert deadline_ms // 3 <= timeout <= deadline_ms // 2  # room for at least one resend
    assert timeout >= min(5_000, deadline_ms // 2)  # a loaded broker gets a few seconds
