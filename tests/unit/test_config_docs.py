"""docs/CONFIG.md is generated from the Settings model; it must match it."""

from __future__ import annotations

from pathlib import Path

from fedclient.app.config_docs import render_markdown
from fedclient.app.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md"


def test_config_reference_is_fresh() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), "docs/CONFIG.md is stale: run `make docs`"


def test_every_setting_is_documented() -> None:
    text = render_markdown()
    for name in Settings.model_fields:
        assert f"| `{name}` |" in text
