"""Fixtures shared by the unit tests: no FEDN_* environment, the root logger restored, a package archive."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.world import MANIFEST


@pytest.fixture
def no_fedn_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FEDN_* variables from the caller's environment."""
    for key in list(os.environ):
        if key.startswith("FEDN_"):
            monkeypatch.delenv(key)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """The root logger's handlers and level as they were (main() configures logging)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A package (the in-memory unpacker's JSON form) whose fedn.yaml is MANIFEST."""
    path = tmp_path / "package.json"
    path.write_text(json.dumps({"client/fedn.yaml": json.dumps(MANIFEST)}))
    return path
