"""Refresh-token settings as FEDn names them, and one shared Credentials in the container."""

from __future__ import annotations

from pathlib import Path

import pytest
from fedclient.adapters.controller_http.refresh import HttpTokenRefresher
from fedclient.app.container import build_container, client_lifecycle
from fedclient.app.settings_load import load_settings

pytestmark = pytest.mark.usefixtures("no_fedn_env")


def test_fedn_env_names_and_the_client_yaml_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init = tmp_path / "client.yaml"
    init.write_text("discover_host: ctl\ntoken: t-file\nrefresh_token: r-file-0123456789\n")
    assert load_settings({}, init).refresh_token_value == "r-file-0123456789"
    monkeypatch.setenv("FEDN_AUTH_REFRESH_TOKEN", "r-env-0123456789")
    monkeypatch.setenv("FEDN_AUTH_REFRESH_TOKEN_URI", "https://auth/refresh/")
    settings = load_settings({}, init)
    assert settings.refresh_token_value == "r-env-0123456789"
    assert settings.refresh_token_uri == "https://auth/refresh/"
    assert "r-env-0123456789" not in repr(settings)
    assert load_settings({"refresh_token": "r-flag-0123456789"}).refresh_token_value == "r-flag-0123456789"


async def test_the_container_shares_one_credentials_object(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "api_url": "localhost",
            "work_dir": tmp_path,
            "token": "tok-0123456789",
            "refresh_token": "ref-0123456789",
            "refresh_token_uri": "http://127.0.0.1:9/refresh",
            "shutdown_grace": 5,
        }
    )
    container = build_container(settings)
    life = await container.lifecycle()
    assert isinstance(life.credentials.refresher, HttpTokenRefresher)
    assert life.assigner.discovery.credentials is life.credentials  # type: ignore[union-attr]
    assert life.package.source.credentials is life.credentials  # type: ignore[union-attr]
    assert life.supervisor.connection.connector.credentials is life.credentials  # type: ignore[attr-defined]
    assert life.plan.shutdown_grace == 5
    await container.shutdown_resources()


async def test_a_refresh_token_without_a_uri_turns_refresh_off(tmp_path: Path) -> None:
    settings = load_settings({"api_url": "localhost", "work_dir": tmp_path, "refresh_token": "r-0123456789"})
    async with client_lifecycle(build_container(settings)) as life:
        assert life.credentials.refresher is None
