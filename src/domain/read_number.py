"""Reading a number a person wrote in a YAML file (the site policy, its privacy section)."""

from __future__ import annotations

from .errors import ConfigError


def as_number(value: object, what: str) -> float:
    """``value`` as a float (a YAML number, or text such as ``1e-5``); a ConfigError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{what}: expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{what}: expected a number, got {value!r}") from None
