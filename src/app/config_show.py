"""`fedclient config show`: every setting, its effective value and where that value came from.

"Effective" includes the unset ones: a cap the client applies when no one sets it (the
archive caps, the model cap) is shown with its number, a site-policy value that comes
from the policy file says so, and the identity kept in the work dir is shown as kept.
A setting that stays unset and means "none" is ``-``; one whose unset meaning is not a
single value says it in parentheses, e.g. ``(no limit)``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from ..domain.errors import ConfigError
from ..domain.policy import SitePolicy
from .defaults import APPLIED, size_text, value_text
from .policy import site_policy
from .settings import Settings, env_names, is_secret, long_flag
from .settings_load import Loaded
from .workdir import kept_identity

MASK = "***"
# What an unset setting means when that is not one value (or not one known before joining).
UNSET_MEANS = {
    "grpc_tls": "(auto)",
    "helper_type": "(the controller's)",
    "package_extract_dir": "(a directory per version in the work dir)",
    "python": "(the python_env's, else PATH's)",
    "allow_package": "(any package)",
    "metrics_port": "(off)",
}
# Site-policy settings: the SitePolicy attribute each one sets, and how its value is written.
POLICY_ATTRS = {
    "limit_memory": ("limits.memory_bytes", "size"),
    "limit_cpu_seconds": ("limits.cpu_seconds", "number"),
    "limit_wall_seconds": ("limits.wall_seconds", "number"),
    "limit_output": ("limits.output_bytes", "size"),
    "limit_open_files": ("limits.open_files", "number"),
    "read_only_package": ("read_only_package", "bool"),
    "max_package_bytes": ("archive.max_download_bytes", "size"),
    "max_unpacked_bytes": ("archive.max_total_bytes", "size"),
    "max_member_bytes": ("archive.max_member_bytes", "size"),
    "max_package_members": ("archive.max_members", "number"),
    "max_compression_ratio": ("archive.max_ratio", "number"),
}


def shown_value(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if is_secret(name) or isinstance(value, SecretStr):
        return MASK
    return value_text(value) if value != "" else '""'


def _attr(policy: SitePolicy, dotted: str) -> Any:
    value: Any = policy
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _policy_value(name: str, policy: SitePolicy, from_file: bool) -> tuple[str, str]:
    dotted, kind = POLICY_ATTRS[name]
    value, default = _attr(policy, dotted), _attr(SitePolicy(), dotted)
    source = "policy file" if from_file and value != default else "default"
    if value is None:
        return "(no limit)", source
    if kind == "size":
        return size_text(int(value)), source
    return value_text(value), source


def _api_port(settings: Settings) -> str:
    """The port the controller URL implies (its own, else its scheme's)."""
    if not settings.api_url:
        return "-"
    from ..adapters.controller_http.endpoint import ControllerEndpoint

    try:
        parts = urlsplit(ControllerEndpoint.build(settings.api_url, None, settings.custom_url_prefix).base)
    except ConfigError:
        return "-"  # `config show` names no URL problem; `run` does
    return str(parts.port or (443 if parts.scheme == "https" else 80))


def effective(name: str, loaded: Loaded, policy: SitePolicy) -> tuple[str, str]:
    """(value, source) of setting ``name``, the value the client will use when it was not set."""
    settings = loaded.settings
    value, source = getattr(settings, name), loaded.sources.get(name, "default")
    if value is not None or source != "default":
        return shown_value(name, value), source
    from_file = settings.policy_file is not None
    if name in POLICY_ATTRS:
        return _policy_value(name, policy, from_file)
    if name == "allow_package" and policy.allowed_packages:
        return f"({len(policy.allowed_packages)} SHA-256s)", "policy file"
    if name in APPLIED:
        return APPLIED[name], "default"
    if name in ("name", "client_id"):
        kept = kept_identity(settings.work_dir)
        if kept is not None:
            return getattr(kept, name), "work dir"
        return "(made at the first start)", "default"
    if name == "api_port":
        return _api_port(settings), "default"
    return UNSET_MEANS.get(name, "-"), "default"


def rows(loaded: Loaded) -> list[tuple[str, str, str, str]]:
    """(setting, value, source, how to set it) for every field of Settings."""
    policy = site_policy(loaded.settings)
    out = []
    for name in Settings.model_fields:
        how = f"{long_flag(name)} / {env_names(name)[0]}"
        out.append((name, *effective(name, loaded, policy), how))
    return out


def render(loaded: Loaded) -> str:
    table = [("setting", "value", "source", "flag / env"), *rows(loaded)]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return "\n".join(
        f"{a.ljust(widths[0])}  {b.ljust(widths[1])}  {c.ljust(widths[2])}  {d}" for a, b, c, d in table
    )
