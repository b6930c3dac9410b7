"""Loading the settings: the --init file (FEDn's client.yaml), and a Settings with each value's source.

Precedence is flags > FEDN_* environment > the --init file > defaults (the model is
``settings``). A refused value becomes one ConfigError naming where the user put it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..adapters.yaml_errors import yaml_problem
from ..domain.errors import ConfigError
from .settings import Settings, env_names, init_file_data, long_flag
from .settings_errors import field_of, problem

# Older names some client.yaml files (and 0.9-era config dicts of the Python API) still use.
LEGACY_KEYS = {
    "discover_host": "api_url",
    "discover_port": "api_port",
    "secure": "grpc_tls",  # 0.9-era: TLS to the combiner
    "verify": "connect_api_secure",  # 0.9-era: verify the controller's certificate
}
# Keys FEDn's tools write into a client.yaml that mean nothing to fedclient (yet): accepted,
# and warned about like -va/-tr. A key that becomes a Settings field is simply read.
FEDN_UNUSED_FILE_KEYS = {"network_id"}
# 0.9-era keys that only ever configured the old client's own internals: skipped without a word.
# (validator and trainer are Settings fields, accepted and warned about like -va/-tr.)
IGNORED_KEYS = {
    "init",
    "logfile",
    "reconnect_after_missed_heartbeat",
    "preshared_cert",
    "dry_run",
}


# ---------------------------------------------------------------- the file --


# Every setting may be a key of the --init file (and of the Python API's config dict), by its field name.
INIT_FILE_KEYS = frozenset(Settings.model_fields)


class InitFile:
    """A FEDn-style client.yaml: its settings, its FEDn keys unused here, and keys that are neither."""

    def __init__(self, values: dict[str, Any], ignored: list[str], unused: list[str] | None = None) -> None:
        self.values = values
        self.ignored = ignored
        self.unused = unused or []


def parse_init_file(path: Path) -> InitFile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--init {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--init file {path} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(str(path), exc, text)) from None
    if data is None:
        return InitFile({}, [])
    if not isinstance(data, dict):
        raise ConfigError(f"--init file {path} must hold a mapping of settings")
    values, unknown = config_values(data, INIT_FILE_KEYS)
    unused = [key for key in unknown if key in FEDN_UNUSED_FILE_KEYS]
    return InitFile(values, [key for key in unknown if key not in FEDN_UNUSED_FILE_KEYS], unused)


def config_values(data: Mapping[str, Any], allowed: Collection[str]) -> tuple[dict[str, Any], list[str]]:
    """Settings values from a client.yaml-style mapping, and the keys that mean nothing to us.

    Takes FEDn 0.33's names and the 0.9-era ones (``discover_host``, ``force_ssl``,
    ``remote_compute_context``, …). The first of two names for one setting wins.
    """
    values: dict[str, Any] = {}
    unknown: list[str] = []
    force_ssl: bool | None = None
    for key, value in data.items():
        name = LEGACY_KEYS.get(key, key)
        if key in IGNORED_KEYS or value is None:
            continue
        if key == "force_ssl":
            force_ssl = bool(value)
        elif key == "remote_compute_context":
            if not value:
                values.setdefault("local_package", ".")
        elif name in allowed:
            values.setdefault(name, value)
        else:
            unknown.append(str(key))
    url = values.get("api_url")
    if force_ssl is not None and isinstance(url, str) and "://" not in url:
        values["api_url"] = f"{'https' if force_ssl else 'http'}://{url}"
    if values.get("local_package") is True:
        values["local_package"] = "."
    elif values.get("local_package") is False:
        values.pop("local_package")
    return values, unknown


# ------------------------------------------------------------------ loading --


class Loaded:
    """Settings plus where each value came from: 'flag', 'env', 'file' or 'default'."""

    def __init__(
        self,
        settings: Settings,
        sources: dict[str, str],
        ignored_file_keys: list[str],
        unused_file_keys: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.sources = sources
        self.ignored_file_keys = ignored_file_keys
        self.unused_file_keys = unused_file_keys or []

    def origin(self, name: str) -> str:
        """How the user set ``name``, for error messages: ``--flag``, ``FEDN_X`` or ``key in FILE``."""
        source = self.sources.get(name, "default")
        if source == "flag":
            return long_flag(name)
        if source == "env":
            return next((e for e in env_names(name) if _env_has(e)), env_names(name)[0])
        if source == "file":
            return f"{name} in the --init file"
        return long_flag(name)


def _env_has(name: str) -> bool:
    return any(key.upper() == name.upper() for key in os.environ)


def sources_for(cli: dict[str, Any], from_file: dict[str, Any]) -> dict[str, str]:
    sources: dict[str, str] = {}
    for name in Settings.model_fields:
        if cli.get(name) is not None:
            sources[name] = "flag"
        elif any(_env_has(e) for e in env_names(name)):
            sources[name] = "env"
        elif name in from_file:
            sources[name] = "file"
        else:
            sources[name] = "default"
    return sources


def load(cli: dict[str, Any], init_file: Path | None = None) -> Loaded:
    """Build Settings from parsed flags (None = not given) and an optional --init file.

    A value pydantic refuses is a ConfigError naming where the user put it
    (``--api-port``, ``FEDN_API_PORT`` or the file key), never a traceback.
    """
    parsed = parse_init_file(init_file) if init_file else InitFile({}, [])
    sources = sources_for(cli, parsed.values)
    token = init_file_data.set(parsed.values)
    try:
        settings = Settings(**{k: v for k, v in cli.items() if v is not None})
    except ValidationError as exc:
        where = Loaded(Settings.model_construct(), sources, parsed.ignored)
        raise ConfigError(f"invalid settings: {describe_validation(exc, where)}") from None
    finally:
        init_file_data.reset(token)
    return Loaded(settings, sources, parsed.ignored, parsed.unused)


def describe_validation(exc: ValidationError, where: Loaded) -> str:
    """Pydantic's errors, each named by where the value came from and saying what is accepted.

    ``FEDN_CONNECT_API_SECURE: 'maybe' is not a boolean; use true/false, 1/0, yes/no, on/off``;
    secret values are never shown.
    """
    problems = []
    for error in exc.errors():
        field = field_of(error)
        if field in Settings.model_fields:
            problems.append(f"{where.origin(field)}: {problem(field, error)}")
        else:
            problems.append(f"{field or 'settings'}: {error['msg']}")
    return "; ".join(problems)


def load_settings(cli: dict[str, Any], init_file: Path | None = None) -> Settings:
    return load(cli, init_file).settings
