"""``common.kafka`` applies DA_KAFKA_* to every client it builds, and a property librdkafka
refuses is a settings error naming the variable (building a client connects to nothing)."""

from __future__ import annotations

import pytest

from common.kafka import make_admin, make_consumer, make_producer, producer_config
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
