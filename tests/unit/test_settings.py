"""Settings precedence (flags > FEDN_* env > --init file > defaults) and the plan built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from fedclient.app.plan import build_plan
from fedclient.app.settings_load import load_settings
from fedclient.domain.errors import ConfigError
from fedclient.domain.model import PackageMode

pytestmark = pytest.mark.usefixtures("no_fedn_env")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_leave_the_identity_to_the_work_dir() -> None:
    a = load_settings({})
    assert a.name is None and a.client_id is None  # made once and kept there: see test_workdir.py
    assert a.token is None and a.auth_scheme == "Bearer" and a.connect_api_secure


def test_fedn_client_yaml_is_read_with_legacy_keys(tmp_path: Path) -> None:
    init = write(
        tmp_path / "client.yaml",
        "network_id: fedn-network\ndiscover_host: api.example.org\ndiscover_port: 8092\n"
        "token: from-file-token\nname: site-a\nclient_id: abc\npackage_checksum: ABCD\n",
    )
    s = load_settings({}, init)
    assert (s.api_url, s.api_port, s.name, s.client_id) == ("api.example.org", 8092, "site-a", "abc")
    assert s.token_value == "from-file-token"
    assert s.package_checksum == "ABCD"


def test_precedence_flags_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init = write(tmp_path / "c.yaml", "api_url: file-host\nname: file-name\ntoken: file-token\n")
    monkeypatch.setenv("FEDN_API_URL", "env-host")
    monkeypatch.setenv("FEDN_AUTH_TOKEN", "env-token")
    s = load_settings({"name": "flag-name"}, init)
    assert (s.api_url, s.name, s.token_value) == ("env-host", "flag-name", "env-token")


def test_token_never_shows_in_repr(tmp_path: Path) -> None:
    s = load_settings({"token": "s3cr3t-token"})
    assert "s3cr3t-token" not in repr(s) and "s3cr3t-token" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a\n- b\n", "must hold a mapping"), ("api_url: [unclosed\n", r"bad\.yaml:2:1: expected ',' or '\]'")],
)
def test_bad_init_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({}, write(tmp_path / "bad.yaml", text))


def test_plan_for_remote_package() -> None:
    plan = build_plan(load_settings({"api_url": "localhost", "name": "n", "client_id": "i"}))
    assert plan.package_mode is PackageMode.REMOTE and plan.combiner is None
    assert (plan.identity.name, plan.identity.client_id) == ("n", "i")


def test_plan_for_local_package_and_direct_combiner(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "fedn.yaml").write_text("entry_points: {}\n")
    settings = load_settings(
        {"combiner": "c.example.org", "combiner_port": 443, "local_package": pkg, "work_dir": tmp_path / "w"}
    )
    plan = build_plan(settings)
    assert plan.package_mode is PackageMode.LOCAL and plan.local_package_dir == pkg.resolve()
    assert plan.combiner is not None and plan.combiner.target == "c.example.org:443"


def test_local_package_flag_alone_means_client_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "client").mkdir()
    (tmp_path / "client" / "fedn.yaml").write_text("entry_points: {}\n")
    monkeypatch.chdir(tmp_path)
    plan = build_plan(load_settings({"api_url": "localhost", "local_package": Path(".")}))
    assert plan.local_package_dir == (tmp_path / "client").resolve()


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({}, "say where to join"),
        ({"combiner": "h"}, "needs --combiner-port"),
        ({"combiner": "h", "combiner_port": 1}, "needs --local-package"),
        (
            {"api_url": "x", "local_package": Path("/nonexistent")},
            "--local-package /nonexistent: no such directory",
        ),
        ({"api_url": "x", "local_package": Path(__file__).parent}, "no fedn.yaml"),
    ],
)
def test_plan_refuses_incomplete_settings(cli: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_plan(load_settings(cli))
