"""The domain names settings by field; the app spells them as its users set them."""

from __future__ import annotations

import pytest
from fedclient.app import setting_names
from fedclient.domain import wording
from fedclient.domain.credentials import no_refresh_hint
from fedclient.domain.package_env import override_source
from fedclient.domain.wording import Form, no_controller_message, setting


def test_the_app_names_flags_and_environment_variables() -> None:
    assert setting("api_url") == "--api-url" and setting("python") == "--python"
    assert setting("package_extract_dir", Form.ENV) == "FEDN_PACKAGE_EXTRACT_DIR"
    assert setting("refresh_token", Form.ENV) == "FEDN_AUTH_REFRESH_TOKEN"
    assert setting_names.spell("not_a_setting", Form.FLAG) == "not_a_setting"
    assert no_controller_message() == (
        "no controller configured: give --api-url, or --combiner and --combiner-port"
    )
    assert override_source() == "set by --python"


def test_without_the_app_a_setting_is_named_by_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wording, "_spelling", None)  # the domain as another runtime would reuse it
    assert no_controller_message() == "no controller configured: give api_url, or combiner and combiner_port"
    assert "(refresh_token and refresh_token_uri)" in no_refresh_hint()
    assert override_source() == "set by python"
