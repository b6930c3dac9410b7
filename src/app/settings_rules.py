"""Settings that contradict each other are refused at start; unused ones are warned about.

Each rule is a small function of the loaded settings returning a message or None,
so a new setting brings its own rule by adding one function to RULES.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from ..domain.errors import ConfigError
from .plan import extract_dir_overlap
from .settings import unused_fields
from .settings_load import Loaded

log = logging.getLogger("fedclient.settings")

Rule = Callable[[Loaded], "str | None"]


def _given(loaded: Loaded, name: str) -> bool:
    return loaded.sources.get(name, "default") != "default"


def _port_without_combiner(loaded: Loaded) -> str | None:
    s = loaded.settings
    if s.combiner_port and not s.combiner:
        return f"{loaded.origin('combiner_port')} without --combiner: say which combiner host to attach to"
    return None


def _direct_and_preferred(loaded: Loaded) -> str | None:
    s = loaded.settings
    if s.combiner and s.preferred_combiner:
        return (
            f"{loaded.origin('combiner')} attaches straight to a combiner, so "
            f"{loaded.origin('preferred_combiner')} cannot apply: give one of them"
        )
    return None


def _checksum_of_local_package(loaded: Loaded) -> str | None:
    s = loaded.settings
    if s.local_package is None:
        return None
    for name in ("package_checksum", "require_checksum"):
        if _given(loaded, name) and getattr(s, name):
            return (
                f"{loaded.origin(name)} checks the controller's package, but "
                f"{loaded.origin('local_package')} uses a local one that is never downloaded"
            )
    return None


def _ca_bundle_without_verification(loaded: Loaded) -> str | None:
    s = loaded.settings
    if s.api_ca_bundle is not None and not s.connect_api_secure:
        return (
            f"{loaded.origin('api_ca_bundle')} names a CA to verify the controller with, but "
            f"{loaded.origin('connect_api_secure')} turns verification off"
        )
    return None


def _metrics_host_without_port(loaded: Loaded) -> str | None:
    if _given(loaded, "metrics_host") and loaded.settings.metrics_port is None:
        return f"{loaded.origin('metrics_host')} has no effect without --metrics-port"
    return None


def _insecure_with_a_ca(loaded: Loaded) -> str | None:
    s = loaded.settings
    if not s.insecure:
        return None
    for name in ("grpc_root_cert_path", "api_ca_bundle"):
        if getattr(s, name) is not None:
            return (
                f"{loaded.origin('insecure')} turns certificate checks off, but {loaded.origin(name)} "
                "names a CA to check them with: give one of them"
            )
    if s.grpc_tls is False:
        insecure, tls = loaded.origin("insecure"), loaded.origin("grpc_tls")
        return f"{insecure} means TLS without checks, but {tls} turns TLS off"
    return None


def _two_tokens(loaded: Loaded) -> str | None:
    if loaded.settings.token is not None and loaded.settings.token_file is not None:
        return f"{loaded.origin('token')} and {loaded.origin('token_file')} both give the token: give one"
    return None


def _two_refresh_tokens(loaded: Loaded) -> str | None:
    s = loaded.settings
    if s.refresh_token is not None and s.refresh_token_file is not None:
        return (
            f"{loaded.origin('refresh_token')} and {loaded.origin('refresh_token_file')} both give "
            "the refresh token: give one"
        )
    return None


def _entrypoint_and_local_package(loaded: Loaded) -> str | None:
    s = loaded.settings
    if s.entrypoint is not None and s.local_package is not None:
        return (
            f"{loaded.origin('entrypoint')} runs your callbacks instead of a compute package: "
            f"drop {loaded.origin('local_package')}"
        )
    return None


def _extract_dir_and_work_dir(loaded: Loaded) -> str | None:
    """The same check as the plan's, naming where the setting came from."""
    return extract_dir_overlap(loaded.settings, loaded.origin("package_extract_dir"))


RULES: list[Rule] = [
    _insecure_with_a_ca,
    _two_tokens,
    _two_refresh_tokens,
    _port_without_combiner,
    _direct_and_preferred,
    _checksum_of_local_package,
    _ca_bundle_without_verification,
    _metrics_host_without_port,
    _entrypoint_and_local_package,
    _extract_dir_and_work_dir,
]


# FEDn client environment variables with no counterpart here, and what to do instead.
FEDN_UNUSED_ENV = {
    "FEDN_REMOTE_LOG_SERVER": "ship the client's log lines instead (--log-format json)",
    "FEDN_REMOTE_LOG_PATH": "ship the client's log lines instead (--log-format json)",
    "FEDN_REMOTE_LOG_LEVEL": "ship the client's log lines instead (--log-format json)",
    "FEDN_REMOTE_LOG_TOKEN": "ship the client's log lines instead (--log-format json)",
    "FEDN_REMOTE_LOG_TOKEN_PROTOCOL": "ship the client's log lines instead (--log-format json)",
}


def unused_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning per FEDn client variable that is set but does nothing in fedclient."""
    env = os.environ if environ is None else environ
    return [
        f"{name} is set but does nothing in fedclient: {instead}"
        for name, instead in FEDN_UNUSED_ENV.items()
        if env.get(name)
    ]


def check(loaded: Loaded) -> None:
    """Raise ConfigError for the first contradiction; warn about settings that do nothing here."""
    for rule in RULES:
        problem = rule(loaded)
        if problem:
            raise ConfigError(problem)
    for name in unused_fields():
        if _given(loaded, name):
            log.warning(
                "%s is accepted for compatibility with fedn client start and does nothing here",
                loaded.origin(name),
            )
    for key in loaded.unused_file_keys:
        log.warning("the --init file's key %r is FEDn's and does nothing here", key)
    for key in loaded.ignored_file_keys:
        log.warning("the --init file's key %r is not a fedclient setting; ignored", key)
    for warning in unused_environment():
        log.warning("%s", warning)
    s = loaded.settings
    if s.package_extract_dir is not None and (s.local_package is not None or s.entrypoint):
        instead = loaded.origin("local_package" if s.local_package is not None else "entrypoint")
        log.warning(
            "%s does nothing with %s: no package is unpacked", loaded.origin("package_extract_dir"), instead
        )
