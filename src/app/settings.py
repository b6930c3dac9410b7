"""Client settings: command-line flags > FEDN_* environment > the --init YAML file > defaults.

This model is the one source of truth for every setting: the `fedclient run`
flags (app.cli_flags), `fedclient config show` and docs/CONFIG.md are all
generated from the fields below. A field's ``description`` is its help text;
``json_schema_extra`` may add:

- ``flags``: the command-line spellings (default ``--field-name``); FEDn's own
  spellings (``-u``, ``--helper_type``, ``-in``…) are kept so scripts work unchanged;
- ``group``: the heading it is listed under;
- ``secret``: masked by `config show`;
- ``unused``: accepted for compatibility with `fedn client start`, warned about when set;
- ``nargs``/``const``/``metavar``: passed on to argparse.

The environment name is ``FEDN_`` + the field name in capitals, or the field's
``validation_alias`` choices. Every field may also be a key of the --init file; reading
that file and building a Settings with each value's source is ``settings_load``.
"""

from __future__ import annotations

import contextvars
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from ..domain.errors import ConfigError
from ..domain.policy import size_bytes

ENV_PREFIX = "FEDN_"
# The --init file's settings while ``settings_load.load`` builds a Settings (a source below).
init_file_data: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "init_file_data", default=None
)


def _meta(
    group: str,
    flags: tuple[str, ...] = (),
    *,
    secret: bool = False,
    unused: bool = False,
    **argparse_extra: Any,
) -> dict[str, Any]:
    extra: dict[str, Any] = {"group": group, **argparse_extra}
    if flags:
        extra["flags"] = list(flags)
    if secret:
        extra["secret"] = True
    if unused:
        extra["unused"] = True
    return extra


POLICY = "site policy (flags override the policy file)"
JOIN, WHO, PACKAGE, RUN, OBSERVE, COMPAT = (
    "where to join",
    "who we are",
    "the compute package",
    "behaviour",
    "what operators see",
    "accepted for compatibility with fedn client start",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    # --- where to join
    api_url: str | None = Field(
        default=None,
        description="controller URL (scheme optional: http for localhost, else https)",
        json_schema_extra=_meta(JOIN, ("-u", "--api-url")),
    )
    api_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="controller port",
        json_schema_extra=_meta(JOIN, ("-p", "--api-port")),
    )
    custom_url_prefix: str = Field(
        default="",
        description="path prefix in front of the controller's /api/v1/",
        json_schema_extra=_meta(JOIN),
    )
    token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("FEDN_TOKEN", "FEDN_AUTH_TOKEN"),
        description="authentication token sent to the controller and the combiner",
        json_schema_extra=_meta(JOIN, secret=True),
    )
    token_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("token_file", "FEDN_AUTH_TOKEN_FILE"),
        description="read the token from this file (its first line), so it is not in `ps` or the environment",
        json_schema_extra=_meta(JOIN, metavar="FILE"),
    )
    refresh_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("refresh_token", "FEDN_AUTH_REFRESH_TOKEN"),
        description="refresh token, to get a new access token when the old one expires",
        json_schema_extra=_meta(JOIN, secret=True),
    )
    refresh_token_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("refresh_token_file", "FEDN_AUTH_REFRESH_TOKEN_FILE"),
        description="read the refresh token from this file",
        json_schema_extra=_meta(JOIN, metavar="FILE"),
    )
    # FEDn's token refresh: POST {"refresh": <refresh token>} to this URI, take "access" from the reply.
    refresh_token_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("refresh_token_uri", "FEDN_AUTH_REFRESH_TOKEN_URI"),
        description="where to refresh an expired token with the refresh token",
        json_schema_extra=_meta(JOIN, metavar="URI"),
    )
    auth_scheme: str = Field(
        default="Bearer", description="scheme word in the Authorization header", json_schema_extra=_meta(JOIN)
    )
    connect_api_secure: bool = Field(
        default=True,
        description="verify the controller's TLS certificate",
        json_schema_extra=_meta(JOIN),
    )
    api_ca_bundle: Path | None = Field(
        default=None,
        description="CA bundle to verify the controller's certificate with",
        json_schema_extra=_meta(JOIN, metavar="FILE"),
    )
    preferred_combiner: str | None = Field(
        default=None,
        description="ask the controller for this combiner",
        json_schema_extra=_meta(JOIN, ("-c", "--preferred-combiner")),
    )
    combiner: str | None = Field(
        default=None,
        description="attach straight to this combiner host, skipping the controller (needs --combiner-port)",
        json_schema_extra=_meta(JOIN),
    )
    combiner_port: int | None = Field(
        default=None, ge=1, le=65535, description="port of --combiner", json_schema_extra=_meta(JOIN)
    )
    grpc_root_cert_path: Path | None = Field(
        default=None,
        description="CA certificate (PEM) to trust for the combiner and an https controller (turns TLS on)",
        json_schema_extra=_meta(JOIN, ("--grpc-root-cert", "--grpc-root-cert-path"), metavar="FILE"),
    )
    grpc_tls: bool | None = Field(
        default=None,
        description="force TLS to the combiner on or off (unset: on for port 443 or with a root certificate)",
        json_schema_extra=_meta(JOIN),
    )
    client_cert_path: Path | None = Field(
        default=None,
        description="mTLS client certificate chain (PEM), for the controller and the combiner",
        json_schema_extra=_meta(JOIN, ("--client-cert", "--client-cert-path"), metavar="FILE"),
    )
    client_key_path: Path | None = Field(
        default=None,
        description="mTLS client private key (PEM)",
        json_schema_extra=_meta(JOIN, ("--client-key", "--client-key-path"), metavar="FILE"),
    )
    insecure: bool = Field(
        default=False,
        description="use TLS without verifying the servers' certificates (not for production; logged)",
        json_schema_extra=_meta(JOIN),
    )

    # --- who we are (not given: made once and kept in the work dir, see app/workdir.py)
    name: str | None = Field(
        default=None,
        description="client display name (default: client + 8 random hex digits, made once and kept "
        "in the work dir)",
        json_schema_extra=_meta(WHO, ("-n", "--name")),
    )
    client_id: str | None = Field(
        default=None,
        description="client id (default: a new UUID, made once and kept in the work dir)",
        json_schema_extra=_meta(WHO, ("-i", "--client-id")),
    )

    # --- the compute package
    local_package: Path | None = Field(
        default=None,
        description="use a local compute package (alone: ./client or .) instead of the controller's",
        json_schema_extra=_meta(PACKAGE, nargs="?", const=".", metavar="DIR"),
    )
    package_checksum: str | None = Field(
        default=None, description="expected SHA-256 of the compute package", json_schema_extra=_meta(PACKAGE)
    )
    require_checksum: bool = Field(
        default=False,
        description="refuse a package whose checksum cannot be verified",
        json_schema_extra=_meta(PACKAGE),
    )
    helper_type: str | None = Field(
        default=None,
        description="model helper (numpyhelper)",
        json_schema_extra=_meta(PACKAGE, ("-hp", "--helper_type", "--helper-type")),
    )
    package_extract_dir: Path | None = Field(
        default=None,
        description="unpack the package over this directory, as FEDn's client does (relative: to the "
        "directory the client starts in); the package runs there and files it writes there are kept "
        "across restarts (unset: a fresh private directory per version in the work dir)",
        json_schema_extra=_meta(PACKAGE, metavar="DIR"),
    )
    work_dir: Path = Field(
        default=Path(".fedclient"),
        description="where packages and models are kept",
        json_schema_extra=_meta(PACKAGE, metavar="DIR"),
    )
    python: str | None = Field(
        default=None,
        description="interpreter for the package's `python` commands, a path or a name on PATH "
        "(default: its python_env, else PATH's)",
        json_schema_extra=_meta(PACKAGE, metavar="PYTHON"),
    )
    managed_env: bool = Field(
        default=True,
        description="build the package's python_env (--no-managed-env: run it with PATH's python)",
        json_schema_extra=_meta(PACKAGE),
    )

    # --- site policy (docs/SECURITY.md): a policy file, and settings that override it
    policy_file: Path | None = Field(
        default=None,
        description="the data owner's site policy (YAML)",
        json_schema_extra=_meta(POLICY, metavar="FILE"),
    )
    allow_package: list[str] | None = Field(
        default=None,
        description="only unpack packages with this SHA-256 (repeatable)",
        json_schema_extra=_meta(POLICY, metavar="SHA256", action="append"),
    )
    limit_memory: str | None = Field(
        default=None,
        description="address-space limit per entry point, e.g. 4GiB",
        json_schema_extra=_meta(POLICY, metavar="SIZE"),
    )
    limit_cpu_seconds: int | None = Field(
        default=None,
        gt=0,
        description="CPU-time limit per entry point",
        json_schema_extra=_meta(POLICY, metavar="S"),
    )
    limit_wall_seconds: float | None = Field(
        default=None,
        gt=0,
        description="wall-time limit per entry point",
        json_schema_extra=_meta(POLICY, metavar="S"),
    )
    limit_output: str | None = Field(
        default=None,
        description="stdout+stderr limit per entry point, e.g. 50MiB",
        json_schema_extra=_meta(POLICY, metavar="SIZE"),
    )
    limit_open_files: int | None = Field(
        default=None,
        gt=0,
        description="open-files limit per entry point",
        json_schema_extra=_meta(POLICY, metavar="N"),
    )
    read_only_package: bool | None = Field(
        default=None,
        description="make the unpacked package directory read-only to its own code",
        json_schema_extra=_meta(POLICY),
    )
    max_package_bytes: str | None = Field(
        default=None,
        description="package download cap",
        json_schema_extra=_meta(POLICY, metavar="SIZE"),
    )
    max_unpacked_bytes: str | None = Field(
        default=None,
        description="total unpacked cap",
        json_schema_extra=_meta(POLICY, metavar="SIZE"),
    )
    max_member_bytes: str | None = Field(
        default=None,
        description="per-member cap",
        json_schema_extra=_meta(POLICY, metavar="SIZE"),
    )
    max_package_members: int | None = Field(
        default=None,
        gt=0,
        description="member-count cap",
        json_schema_extra=_meta(POLICY, metavar="N"),
    )
    max_compression_ratio: float | None = Field(
        default=None,
        gt=0,
        description="unpacked/packed cap",
        json_schema_extra=_meta(POLICY, metavar="X"),
    )
    max_model_bytes: str | None = Field(
        default=None,
        description="cap on a model from the combiner",
        json_schema_extra=_meta(POLICY, metavar="SIZE"),
    )

    # --- the in-process client: the user's callbacks instead of a compute package
    entrypoint: str | None = Field(
        default=None,
        description="run these Python callbacks (train, validate, predict, ...) in-process "
        "instead of a compute package",
        json_schema_extra=_meta(PACKAGE, metavar="MODULE:OBJECT"),
    )

    # --- behaviour
    train_timeout: float = Field(
        default=3600.0,
        gt=0,
        description="seconds a train/validate/predict run may take",
        json_schema_extra=_meta(RUN, metavar="SECONDS"),
    )
    heartbeat_interval: float = Field(
        default=2.0,
        gt=0,
        description="seconds between heartbeats",
        json_schema_extra=_meta(RUN, metavar="SECONDS"),
    )
    heartbeat_miss_limit: int = Field(
        default=3,
        ge=1,
        description="heartbeats missed in a row before the client reconnects",
        json_schema_extra=_meta(RUN, metavar="N"),
    )
    shutdown_grace: float = Field(
        default=120.0,
        ge=0,
        description="on SIGINT/SIGTERM, seconds the running task may take to finish before it is cancelled",
        json_schema_extra=_meta(RUN, metavar="SECONDS"),
    )
    telemetry_interval: float = Field(
        default=5.0,
        ge=0,
        description="seconds between CPU/memory telemetry messages to the combiner (0 = off)",
        json_schema_extra=_meta(RUN, metavar="SECONDS"),
    )
    task_queue_limit: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="tasks that may wait to start; past it the oldest is dropped with a log line",
        json_schema_extra=_meta(RUN, metavar="N"),
    )
    delivery_retry_max: float = Field(
        default=30.0,
        gt=0,
        description="longest wait, in seconds, between two tries to deliver a finished result "
        "(or a task's model download)",
        json_schema_extra=_meta(RUN, metavar="SECONDS"),
    )
    shutdown_flush: float = Field(
        default=10.0,
        ge=0,
        description="on stop, seconds the outbox may take to deliver what it holds (the rest waits "
        "for the next start)",
        json_schema_extra=_meta(RUN, metavar="SECONDS"),
    )

    # --- what operators see
    log_level: str = Field(
        default="INFO",
        description="DEBUG, INFO, WARNING, ERROR or CRITICAL (--verbose is DEBUG, --quiet is WARNING)",
        json_schema_extra=_meta(OBSERVE),
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text lines, or one JSON object per line",
        json_schema_extra=_meta(OBSERVE),
    )
    progress: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="progress bars and a live status line: auto means only on a terminal",
        json_schema_extra=_meta(OBSERVE),
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="serve Prometheus /metrics and /healthz on this port (0: any free port)",
        json_schema_extra=_meta(OBSERVE, metavar="PORT"),
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address the metrics endpoint binds (0.0.0.0 to reach it from elsewhere)",
        json_schema_extra=_meta(OBSERVE, metavar="HOST"),
    )

    # --- accepted for compatibility with `fedn client start`; FEDn 0.33 ignores them too
    validator: str | None = Field(
        default=None,
        description="ignored: every client validates when asked",
        json_schema_extra=_meta(COMPAT, ("-va", "--validator"), unused=True),
    )
    trainer: str | None = Field(
        default=None,
        description="ignored: every client trains when asked",
        json_schema_extra=_meta(COMPAT, ("-tr", "--trainer"), unused=True),
    )

    @field_validator("name")
    @classmethod
    def _name_is_printable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or not re.fullmatch(r"[\w.@:-]+", value):
            raise ValueError("client names may hold letters, digits and _ . @ : - only")
        return value

    @field_validator(
        "limit_memory",
        "limit_output",
        "max_package_bytes",
        "max_unpacked_bytes",
        "max_member_bytes",
        "max_model_bytes",
        mode="before",
    )
    @classmethod
    def _a_size(cls, value: object) -> object:
        """Checked here: a bad size is refused at start, named by where it was set (an int is taken too)."""
        if value is None:
            return None
        size = size_bytes(value)
        if size is None:
            raise PydanticCustomError("size_parsing", "not a size")
        if size <= 0:
            raise PydanticCustomError("size_too_small", "not more than 0 bytes")
        return str(value)

    @field_validator("package_extract_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # FEDN_PACKAGE_EXTRACT_DIR= (empty) is not the start directory itself.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @field_validator("validator", "trainer", mode="before")
    @classmethod
    def _any_text(cls, value: object) -> object:
        return None if value is None else str(value)

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
            InitSettingsSource(settings_cls, init_kwargs=init_file_data.get() or {}),
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


# ----------------------------------------------------------- field metadata --


def extra(info: FieldInfo) -> dict[str, Any]:
    value = info.json_schema_extra
    return dict(value) if isinstance(value, dict) else {}


def flags_of(name: str, info: FieldInfo | None = None) -> list[str]:
    info = info or Settings.model_fields[name]
    given = extra(info).get("flags")
    return list(given) if given else [f"--{name.replace('_', '-')}"]


def long_flag(name: str) -> str:
    flags = flags_of(name)
    return next((f for f in flags if f.startswith("--")), flags[0])


def env_names(name: str, info: FieldInfo | None = None) -> list[str]:
    info = info or Settings.model_fields[name]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names = [c for c in alias.choices if isinstance(c, str) and c.startswith(ENV_PREFIX)]
        if names:
            return names
    return [f"{ENV_PREFIX}{name.upper()}"]


def is_secret(name: str) -> bool:
    return bool(extra(Settings.model_fields[name]).get("secret"))


def unused_fields() -> list[str]:
    return [n for n, info in Settings.model_fields.items() if extra(info).get("unused")]
