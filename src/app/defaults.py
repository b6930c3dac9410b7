"""The value each setting has when nobody sets it, as `run --help`, `config show` and docs/CONFIG.md say it.

Most defaults are the Settings field's own. A few fields default to None in the model
because the value the client then uses lives elsewhere: the archive caps in
``domain.archive_rules.ArchiveLimits``, the model cap in ``app.policy``. ``APPLIED``
names those, so no help text has to repeat (and go stale on) a number.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticUndefined

from ..domain.archive_rules import ArchiveLimits
from .policy import DEFAULT_MAX_MODEL_BYTES
from .settings import Settings

_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def size_text(n: int) -> str:
    """``536870912`` -> ``512MiB``: the largest binary unit that divides it, as a flag takes it."""
    for unit, size in _UNITS:
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def value_text(value: Any) -> str:
    """A setting's value as the user would type it (bools true/false, 3600.0 as 3600)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_ARCHIVE = ArchiveLimits()
# Fields whose model default is None but whose unset value is a real one the client applies.
APPLIED: dict[str, str] = {
    "max_package_bytes": size_text(_ARCHIVE.max_download_bytes),
    "max_unpacked_bytes": size_text(_ARCHIVE.max_total_bytes),
    "max_member_bytes": size_text(_ARCHIVE.max_member_bytes),
    "max_package_members": str(_ARCHIVE.max_members),
    "max_compression_ratio": value_text(_ARCHIVE.max_ratio),
    "max_model_bytes": size_text(DEFAULT_MAX_MODEL_BYTES),
    "read_only_package": "false",
}


def default_text(name: str) -> str | None:
    """The default of setting ``name`` as text, or None when unset means "none" (no default to show)."""
    if name in APPLIED:
        return APPLIED[name]
    info = Settings.model_fields[name]
    if info.default_factory is not None:
        return None
    value = info.default
    if value is PydanticUndefined or value is None or value == "":
        return None
    return value_text(value)
