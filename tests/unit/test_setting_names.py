"""The domain names settings by field; the app spells them as its users set them, handed in explicitly."""

from __future__ import annotations

from pathlib import Path

from dependency_injector import providers
from fedclient.app.container import build_container
from fedclient.app.setting_names import spell
from fedclient.app.settings_load import load_settings
from fedclient.domain.credentials import no_refresh_hint
from fedclient.domain.errors import AuthError
from fedclient.domain.package_env import choose_interpreter, override_source
from fedclient.domain.wording import Form, field_names, no_controller_message


def test_the_app_names_flags_and_environment_variables() -> None:
    assert spell("api_url") == "--api-url" and spell("python") == "--python"
    assert spell("package_extract_dir", Form.ENV) == "FEDN_PACKAGE_EXTRACT_DIR"
    assert spell("refresh_token", Form.ENV) == "FEDN_AUTH_REFRESH_TOKEN"
    assert spell("not_a_setting", Form.FLAG) == "not_a_setting"
    assert no_controller_message(spell) == (
        "no controller configured: give --api-url, or --combiner and --combiner-port"
    )
    assert override_source(spell) == "set by --python"


def test_without_the_app_a_setting_is_named_by_its_field() -> None:
    assert field_names("api_url", Form.ENV) == "api_url"
    assert no_controller_message() == "no controller configured: give api_url, or combiner and combiner_port"
    assert "(refresh_token and refresh_token_uri)" in no_refresh_hint()
    assert override_source() == "set by python"
    choice = choose_interpreter(
        "python", override="/x/python", env_bin=None, on_path=lambda _: None, own="/o"
    )
    assert choice.source == "set by python"


def test_the_container_hands_the_app_spelling_to_the_plan_and_the_credentials(tmp_path: Path) -> None:
    settings = {"api_url": "localhost", "token": "t0", "name": "a", "client_id": "b", "work_dir": tmp_path}
    container = build_container(load_settings(settings))
    container.refresher.override(providers.Object(None))  # no refresh token configured (nothing opened)
    plan = container.plan()
    assert plan.setting_names is spell and plan.package.setting_names is spell
    final = container.credentials().final(AuthError("the combiner refused our token"))
    assert str(final) == f"the combiner refused our token — {no_refresh_hint(spell)}"
    assert "(FEDN_AUTH_REFRESH_TOKEN and FEDN_AUTH_REFRESH_TOKEN_URI)" in str(final)
