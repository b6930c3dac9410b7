"""Client settings: command-line flags > FEDN_* environment > the --init YAML file > defaults.

The names follow `fedn client start` and FEDn's client.yaml so that an existing
deployment's flags, environment and files keep working unchanged.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from ..domain.errors import ConfigError

# Keys of FEDn's client.yaml, and the older names some files still use.
INIT_FILE_KEYS = {
    "api_url",
    "api_port",
    "token",
    "name",
    "client_id",
    "preferred_combiner",
    "combiner",
    "combiner_port",
    "package_checksum",
    "helper_type",
    "refresh_token",
    "local_package",
    "log_level",
    "python",
    "managed_env",
    # what the 0.9-era names below map to
    "grpc_tls",
    "connect_api_secure",
}
LEGACY_KEYS = {
    "discover_host": "api_url",
    "discover_port": "api_port",
    "secure": "grpc_tls",  # 0.9-era: TLS to the combiner
    "verify": "connect_api_secure",  # 0.9-era: verify the controller's certificate
}
# 0.9-era keys that only ever configured the old client's own internals.
IGNORED_KEYS = {
    "validator",
    "trainer",
    "init",
    "logfile",
    "reconnect_after_missed_heartbeat",
    "preshared_cert",
    "dry_run",
}

_init_file_data: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "init_file_data", default=None
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEDN_", extra="ignore", populate_by_name=True)

    # --- where to join
    api_url: str | None = None
    api_port: int | None = Field(default=None, ge=1, le=65535)
    custom_url_prefix: str = ""
    token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("FEDN_TOKEN", "FEDN_AUTH_TOKEN")
    )
    token_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("token_file", "FEDN_AUTH_TOKEN_FILE")
    )
    refresh_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("refresh_token", "FEDN_AUTH_REFRESH_TOKEN")
    )
    refresh_token_file: Path | None = Field(
        default=None, validation_alias=AliasChoices("refresh_token_file", "FEDN_AUTH_REFRESH_TOKEN_FILE")
    )
    auth_scheme: str = "Bearer"
    # FEDn's token refresh: POST {"refresh": <refresh token>} to this URI, take "access" from the reply.
    refresh_token_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("refresh_token_uri", "FEDN_AUTH_REFRESH_TOKEN_URI")
    )
    connect_api_secure: bool = True  # verify the controller's TLS certificate
    api_ca_bundle: Path | None = None
    preferred_combiner: str | None = None
    combiner: str | None = None
    combiner_port: int | None = Field(default=None, ge=1, le=65535)
    grpc_root_cert_path: Path | None = None
    # gRPC TLS: True/False force it on/off; unset, FEDn's rule (port 443, or a root cert given).
    grpc_tls: bool | None = None
    client_cert_path: Path | None = None  # mTLS (controller and combiner): our certificate chain
    client_key_path: Path | None = None  # ... and its private key
    insecure: bool = False  # TLS without verifying the server: an explicit, logged opt-out

    # --- who we are (not given: made once and kept in the work dir, see app/workdir.py)
    name: str | None = None
    client_id: str | None = None

    # --- the compute package
    local_package: Path | None = None
    package_checksum: str | None = None
    require_checksum: bool = False
    helper_type: str | None = None
    work_dir: Path = Path(".fedclient")
    # The package's interpreter (a path or a name on PATH); unset: python_env, else PATH.
    python: str | None = None
    managed_env: bool = True  # build the package's python_env (off: run it as if it had none)

    # --- site policy (docs/SECURITY.md): a policy file, and flags that override it
    policy_file: Path | None = None
    allow_package: list[str] | None = None  # SHA-256s; only these packages may be unpacked
    limit_memory: str | None = None  # e.g. 2GiB
    limit_cpu_seconds: int | None = Field(default=None, gt=0)
    limit_wall_seconds: float | None = Field(default=None, gt=0)
    limit_output: str | None = None  # e.g. 10MiB
    limit_open_files: int | None = Field(default=None, gt=0)
    read_only_package: bool | None = None
    max_package_bytes: str | None = None  # download cap, e.g. 512MiB
    max_unpacked_bytes: str | None = None
    max_member_bytes: str | None = None
    max_package_members: int | None = Field(default=None, gt=0)
    max_compression_ratio: float | None = Field(default=None, gt=0)
    max_model_bytes: str | None = None  # cap on a model downloaded from the combiner

    # --- the in-process client: the user's callbacks instead of a compute package
    entrypoint: str | None = None

    # --- behaviour
    train_timeout: float = Field(default=3600.0, gt=0)
    heartbeat_interval: float = Field(default=2.0, gt=0)
    heartbeat_miss_limit: int = Field(default=3, ge=1)  # missed in a row -> reconnect
    shutdown_grace: float = Field(default=120.0, ge=0)  # SIGTERM: seconds the running task may finish
    telemetry_interval: float = Field(default=5.0, ge=0)  # FEDn's client: every 5 s; 0 = off
    # Reliability: tasks waiting to start, the outbox's retry cap, and how long stop waits for it.
    task_queue_limit: int = Field(default=8, ge=1, le=1024)
    delivery_retry_max: float = Field(default=30.0, gt=0)
    shutdown_flush: float = Field(default=10.0, ge=0)
    log_level: str = "INFO"

    @field_validator("name")
    @classmethod
    def _name_is_printable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or not re.fullmatch(r"[\w.@:-]+", value):
            raise ValueError("client names may hold letters, digits and _ . @ : - only")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @property
    def token_value(self) -> str | None:
        if self.token:
            return self.token.get_secret_value()
        return read_secret_file(self.token_file, "token") if self.token_file else None

    @property
    def refresh_token_value(self) -> str | None:
        if self.refresh_token:
            return self.refresh_token.get_secret_value()
        if self.refresh_token_file:
            return read_secret_file(self.refresh_token_file, "refresh token")
        return None

    @property
    def secrets(self) -> list[str | None]:
        """Every secret in these settings, for the redactor."""
        return [self.token_value, self.refresh_token_value]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            InitSettingsSource(settings_cls, init_kwargs=_init_file_data.get() or {}),
        )


_SECRET_FILE_MAX = 64 * 1024


def read_secret_file(path: Path, what: str) -> str:
    """A token kept in a file (so it is not on argv or in the environment): its first line, stripped."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_SECRET_FILE_MAX + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    if len(raw) > _SECRET_FILE_MAX:
        raise ConfigError(f"the {what} file {path} is larger than {_SECRET_FILE_MAX} bytes")
    try:
        lines = raw.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"the {what} file {path} is not UTF-8 text") from None
    value = lines[0].strip() if lines else ""
    if not value:
        raise ConfigError(f"the {what} file {path} is empty")
    return value


def read_init_file(path: Path) -> dict[str, Any]:
    """Read a FEDn-style client.yaml; unknown keys are ignored, legacy names mapped."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--init file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--init file {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--init file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--init file {path} must hold a mapping of settings")
    return config_values(data, INIT_FILE_KEYS)[0]


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
    return values, unknown


def load_settings(cli: dict[str, Any], init_file: Path | None = None) -> Settings:
    """Build Settings from parsed flags (None = not given) and an optional --init file."""
    from_file = read_init_file(init_file) if init_file else {}
    token = _init_file_data.set(from_file)
    try:
        return Settings(**{k: v for k, v in cli.items() if v is not None})
    finally:
        _init_file_data.reset(token)
