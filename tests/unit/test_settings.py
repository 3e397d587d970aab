"""``Settings.load``: the environment over the stack file, and one clear error per bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import Settings, SettingsError
from common.stack_paths import stack_file, state_dir

KAFKA, DB = "127.0.0.1:9092", "postgresql://postgres@127.0.0.1:5432/da"


def _with_stack_file(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {"DA_STATE_DIR": str(tmp_path)}
    stack_file(env).write_text(
        "# written by da stack up\n" + "".join(f"{k}={v}\n" for k, v in values.items())
    )
    return env


def test_reads_the_stack_file(tmp_path: Path) -> None:
    env = _with_stack_file(tmp_path, DA_KAFKA_BOOTSTRAP_SERVERS=KAFKA, DA_DATABASE_URL=DB)
    settings = Settings.load(env)
    assert (settings.kafka_bootstrap_servers, settings.database_url) == (KAFKA, DB)


def test_environment_wins_over_the_stack_file(tmp_path: Path) -> None:
    env = _with_stack_file(
        tmp_path, DA_KAFKA_BOOTSTRAP_SERVERS=KAFKA, DA_DATABASE_URL=DB, DA_PARTITIONS="2"
    )
    env |= {"DA_KAFKA_BOOTSTRAP_SERVERS": "broker:9093", "DA_PARTITIONS": "12"}
    settings = Settings.load(env)
    assert settings.kafka_bootstrap_servers == "broker:9093"
    assert settings.database_url == DB
    assert settings.partitions == 12


def test_typed_values_are_parsed(tmp_path: Path) -> None:
    env = {
        "DA_STATE_DIR": str(tmp_path),
        "DA_KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "DA_DATABASE_URL": DB,
        "DA_BATCH_SIZE": "250",
        "DA_POLL_TIMEOUT_S": "0.25",
        "DA_NAMESPACE": "t1",
        "DA_DATABASE_SCHEMA": "s1",
    }
    settings = Settings.load(env)
    assert (settings.batch_size, settings.poll_timeout_s) == (250, 0.25)
    assert (settings.namespace, settings.database_schema) == ("t1", "s1")


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ({"DA_DATABASE_URL": DB}, "DA_KAFKA_BOOTSTRAP_SERVERS"),
        ({"DA_KAFKA_BOOTSTRAP_SERVERS": KAFKA}, "DA_DATABASE_URL"),
        ({}, "DA_KAFKA_BOOTSTRAP_SERVERS and DA_DATABASE_URL"),
    ],
)
def test_missing_service_names_the_variable(
    tmp_path: Path, present: dict[str, str], missing: str
) -> None:
    with pytest.raises(SettingsError, match=missing) as caught:
        Settings.load({"DA_STATE_DIR": str(tmp_path), **present})
    assert "da stack up" in str(caught.value)


def test_outside_any_checkout_the_error_points_back_to_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .da/ nor .git above it
    with pytest.raises(SettingsError) as caught:
        Settings.load({})
    assert f"no local stack found at {tmp_path / '.da' / 'stack.env'}" in str(caught.value)
    assert "run da from the checkout whose stack runs (or set DA_STATE_DIR)" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("DA_PARTITIONS", "six"), ("DA_BATCH_SIZE", "1.5"), ("DA_IO_TIMEOUT_S", "soon")],
)
def test_bad_numbers_are_rejected(tmp_path: Path, name: str, raw: str) -> None:
    env = {
        "DA_STATE_DIR": str(tmp_path),
        "DA_KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "DA_DATABASE_URL": DB,
        name: raw,
    }
    with pytest.raises(SettingsError, match=name):
        Settings.load(env)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("DA_PARTITIONS", "0"),
        ("DA_POLL_TIMEOUT_S", "-1"),
        ("DA_BATCH_LINGER_S", "-0.1"),
        ("DA_NAMESPACE", "Bad Name"),
        ("DA_DATABASE_SCHEMA", "drop;table"),
    ],
)
def test_out_of_range_values_are_rejected(tmp_path: Path, name: str, raw: str) -> None:
    env = {
        "DA_STATE_DIR": str(tmp_path),
        "DA_KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "DA_DATABASE_URL": DB,
        name: raw,
    }
    with pytest.raises(SettingsError, match=name):
        Settings.load(env)


def _env(**extra: str) -> dict[str, str]:
    return {"DA_STATE_DIR": "/nonexistent", "DA_KAFKA_BOOTSTRAP_SERVERS": KAFKA,
            "DA_DATABASE_URL": DB, **extra}  # fmt: skip


def test_da_kafka_variables_become_librdkafka_properties() -> None:
    settings = Settings.load(
        _env(
            DA_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
            DA_KAFKA_SASL_MECHANISMS="SCRAM-SHA-512",
            DA_KAFKA_SSL_CA_LOCATION="/etc/ca.pem",
            DA_KAFKA_HOME="/opt/kafka",  # the launcher's jars, not a client property
        )
    )
    assert settings.kafka_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "ssl.ca.location": "/etc/ca.pem",
    }


@pytest.mark.parametrize("variable", ["DA_KAFKA_ENABLE_AUTO_COMMIT", "DA_KAFKA_ISOLATION_LEVEL"])
def test_properties_the_pipeline_owns_are_refused_by_name(variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.load(_env(**{variable: "x"}))


def test_secrets_are_masked_and_never_in_repr() -> None:
    settings = Settings.load(
        _env(
            DA_KAFKA_SASL_USERNAME="alice",
            DA_KAFKA_SASL_PASSWORD="hunter22",
            DA_DATABASE_URL="postgresql://app:pg-pass@db:5432/da?sslmode=verify-full",
        )
    )
    assert "hunter22" not in repr(settings)
    assert settings.shown_kafka_properties() == ["sasl.password=***", "sasl.username=alice"]
    line = settings.redact("login hunter22 to postgresql://app:pg-pass@db:5432/da")
    assert line == "login *** to postgresql://app:***@db:5432/da"


def test_a_bad_log_level_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"^DA_LOG_LEVEL='verbose': use one of DEBUG, INFO"):
        Settings.load(_env(DA_LOG_LEVEL="verbose"))


def test_the_state_dir_is_found_from_any_subfolder(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    deep = checkout / "dep" / "migrations"
    deep.mkdir(parents=True)
    # No stack yet: the top of the checkout, not the subfolder, is where it will be.
    assert state_dir({}, cwd=deep) == checkout / ".da"
    (checkout / ".da").mkdir()
    assert state_dir({}, cwd=deep) == checkout / ".da"
    assert state_dir({"DA_STATE_DIR": str(tmp_path / "s")}, cwd=deep) == tmp_path / "s"
