"""Reporting settings: chDB by default, a ClickHouse server when CLICKHOUSE_URL says so, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reporting.settings import ReportingSettings


@pytest.fixture(autouse=True)
def _no_inherited_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLICKHOUSE_URL", "CHDB_PATH", "HTTP_PORT", "BATCH_SIZE", "CONSUMER_GROUP"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_chdb_under_the_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)

    settings = ReportingSettings(api_keys_file=Path("keys.json"))

    assert settings.clickhouse_dsn() == f"chdb://{tmp_path.resolve()}/.local/clickhouse"
    assert (settings.http_port, settings.consumer_group, settings.batch_size) == (8004, "reporting", 20_000)
    assert settings.batch_max_wait_seconds == 0.1


def test_clickhouse_url_selects_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", "http://clickhouse:8123")

    assert ReportingSettings(api_keys_file=Path("keys.json")).clickhouse_dsn() == "http://clickhouse:8123"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CLICKHOUSE_URL", "clickhouse:8123"), ("BATCH_SIZE", "0"), ("BATCH_MAX_WAIT_SECONDS", "-1")],
)
def test_bad_values_stop_the_start_up(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError, match=variable.lower()):
        ReportingSettings(api_keys_file=Path("keys.json"))
