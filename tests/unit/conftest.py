"""Fixtures shared by the unit tests that read settings from the environment or run main()."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest


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
