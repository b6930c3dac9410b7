"""FEDn client variables with no counterpart in fedclient are named in a warning, never silently dropped."""

from __future__ import annotations

import logging

import pytest
from fedclient.app.settings_load import load
from fedclient.app.settings_rules import FEDN_UNUSED_ENV, check, unused_environment


def test_each_unused_fedn_variable_that_is_set_gets_one_warning() -> None:
    env = {"FEDN_REMOTE_LOG_SERVER": "logs.example", "FEDN_REMOTE_LOG_TOKEN": "t", "FEDN_X": "1"}
    warnings = unused_environment(env)
    assert len(warnings) == 2
    assert warnings[0].startswith("FEDN_REMOTE_LOG_SERVER is set but does nothing")
    assert warnings[1].startswith("FEDN_REMOTE_LOG_TOKEN is set but does nothing")
    assert all("--log-format json" in w for w in warnings)


def test_the_package_extract_dir_is_no_longer_unused() -> None:
    assert "FEDN_PACKAGE_EXTRACT_DIR" not in FEDN_UNUSED_ENV
    assert unused_environment({"FEDN_PACKAGE_EXTRACT_DIR": "package"}) == []


def test_unset_or_empty_variables_say_nothing() -> None:
    assert unused_environment({name: "" for name in FEDN_UNUSED_ENV}) == []
    assert unused_environment({}) == []


def test_the_start_up_check_logs_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FEDN_REMOTE_LOG_SERVER", "logs.example")
    with caplog.at_level(logging.WARNING, logger="fedclient.settings"):
        check(load({"api_url": "localhost"}))
    assert any("FEDN_REMOTE_LOG_SERVER is set but does nothing" in r.getMessage() for r in caplog.records)
