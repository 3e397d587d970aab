"""A DEP's own database: DA_DEP_<NAME>_DATABASE_URL, resolved in one place, migrations routed to
it, a name that is no DEP refused, its password masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.db import Migration
from common.settings import Settings, SettingsError
from common.stages import DEPS, check_dep_databases

DB = "postgresql://postgres@127.0.0.1:5432/da"
OWN = "postgresql://fs:s3cret@10.0.0.7:5433/fulfillment"


def _load(tmp_path: Path, **extra: str) -> Settings:
    env = {"DA_STATE_DIR": str(tmp_path), "DA_KAFKA_BOOTSTRAP_SERVERS": "k:9092"}
    return Settings.load({**env, "DA_DATABASE_URL": DB, **extra})


def test_a_dep_with_its_own_url_resolves_to_it_and_the_others_to_the_shared_one(
    tmp_path: Path,
) -> None:
    settings = _load(tmp_path, DA_DEP_FULFILLMENT_STATE_DATABASE_URL=OWN)
    assert settings.database_url_for("fulfillment-state") == OWN
    assert settings.database_url_for("usage-metrics") == DB
    assert settings.for_dep("fulfillment-state").database_url == OWN
    assert settings.database_urls() == [DB, OWN]
    check_dep_databases(settings)  # a real DEP: accepted


def test_unset_or_empty_means_the_shared_database(tmp_path: Path) -> None:
    settings = _load(tmp_path, DA_DEP_FULFILLMENT_STATE_DATABASE_URL="")
    assert settings.database_url_for("fulfillment-state") == DB
    assert settings.database_urls() == [DB]


def test_a_name_that_is_no_dep_is_refused_naming_the_real_ones(tmp_path: Path) -> None:
    settings = _load(tmp_path, DA_DEP_FULFILMENT_STATE_DATABASE_URL=OWN)  # one L: a typo
    with pytest.raises(SettingsError, match="DA_DEP_FULFILMENT_STATE_DATABASE_URL names no DEP"):
        check_dep_databases(settings)


def test_a_malformed_dep_url_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="DA_DEP_USAGE_METRICS_DATABASE_URL is malformed"):
        _load(tmp_path, DA_DEP_USAGE_METRICS_DATABASE_URL="host=x port=notaport =")


def test_the_dep_databases_password_is_masked_and_kept_out_of_repr(tmp_path: Path) -> None:
    settings = _load(tmp_path, DA_DEP_FULFILLMENT_STATE_DATABASE_URL=OWN)
    assert "s3cret" not in settings.redact(f"could not connect to {OWN}")
    assert "s3cret" not in repr(settings)


def test_each_migration_belongs_to_the_dep_whose_tables_it_makes() -> None:
    for spec in DEPS.values():
        assert {m.owner for m in spec.migration_files()} <= {spec.name}
    assert Migration("collector/001_apps.sql", Path("x")).owner == "collector"
