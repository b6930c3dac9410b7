"""A FEDn client.yaml-style dict → fedclient Settings, warning about keys that mean nothing here."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ...app.settings import Settings
from ...app.settings_errors import field_of, problem
from ...app.settings_load import INIT_FILE_KEYS, config_values
from ...domain.errors import ConfigError

ACCEPTED_KEYS = frozenset(INIT_FILE_KEYS) | frozenset(Settings.model_fields)


def settings_from_config(config: Mapping[str, Any] | None, stacklevel: int = 3) -> Settings:
    """Settings from ``config`` (over FEDN_* environment variables); a bad value is a ConfigError."""
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(f"the client config must be a dict, got {type(config).__name__}")
    values, unknown = config_values(config or {}, ACCEPTED_KEYS)
    for key in unknown:
        warnings.warn(f"client config key {key!r} is not a fedclient setting; ignored", stacklevel=stacklevel)
    try:  # errors named by the dict's keys (the CLI's loader names flags, which the caller never gave)
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ConfigError(f"invalid client config: {problems}") from None


def _problem(error: ErrorDetails) -> str:
    """``api_port: 'many' is not a whole number; use a whole number from 1 to 65535``."""
    field = field_of(error)
    if field in Settings.model_fields:
        return f"{field}: {problem(field, error)}"
    return f"{'.'.join(map(str, error['loc'])) or 'config'}: {error['msg']}"
