"""`fedclient config show`: every setting, its effective value and where that value came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .settings import Settings, env_names, is_secret, long_flag
from .settings_load import Loaded

MASK = "***"


def shown_value(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if is_secret(name) or isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rows(loaded: Loaded) -> list[tuple[str, str, str, str]]:
    """(setting, value, source, how to set it) for every field of Settings."""
    out = []
    for name in Settings.model_fields:
        value = getattr(loaded.settings, name)
        how = f"{long_flag(name)} / {env_names(name)[0]}"
        out.append((name, shown_value(name, value), loaded.sources.get(name, "default"), how))
    return out


def render(loaded: Loaded) -> str:
    table = [("setting", "value", "source", "flag / env"), *rows(loaded)]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return "\n".join(
        f"{a.ljust(widths[0])}  {b.ljust(widths[1])}  {c.ljust(widths[2])}  {d}" for a, b, c, d in table
    )
