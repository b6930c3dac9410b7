"""The composition root: one dependency-injector container wires adapters into the domain.

Tests build it with real settings and override providers with the in-memory fakes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from dependency_injector import containers, providers

from ..adapters.clock import SystemClock
from ..adapters.combiner_grpc.link import GrpcConnector
from ..adapters.controller_http import ControllerEndpoint, HttpxDiscovery, HttpxPackageSource
from ..adapters.controller_http.refresh import HttpTokenRefresher
from ..adapters.package_archive import TarPackageUnpacker
from ..adapters.trainers import PID_FILE, subprocess_trainer_factory
from ..domain.credentials import Credentials
from ..domain.lifecycle import Lifecycle
from .logs import register_secrets
from .plan import build_plan
from .settings import Settings

log = logging.getLogger("fedclient")


def _endpoint(settings: Settings) -> ControllerEndpoint | None:
    if not settings.api_url:
        return None
    return ControllerEndpoint.build(settings.api_url, settings.api_port, settings.custom_url_prefix)


def _verify(settings: Settings) -> bool | str:
    if settings.api_ca_bundle is not None:
        return str(settings.api_ca_bundle)
    return settings.connect_api_secure


def _refresher(settings: Settings) -> HttpTokenRefresher | None:
    uri, refresh_token = settings.refresh_token_uri, settings.refresh_token_value
    if not uri and not refresh_token:
        return None
    if not uri or not refresh_token:
        missing = "FEDN_AUTH_REFRESH_TOKEN_URI" if not uri else "FEDN_AUTH_REFRESH_TOKEN"
        log.warning("token refresh is off: %s is not set", missing)
        return None
    return HttpTokenRefresher(uri, refresh_token, _verify(settings))


def _credentials(settings: Settings, refresher: HttpTokenRefresher | None) -> Credentials:
    """One token for every channel; each refreshed token is scrubbed from logs like the first."""
    return Credentials(
        settings.token_value,
        refresher,
        SystemClock(),
        on_new_token=lambda token: register_secrets([token]),
    )


def _discovery(
    settings: Settings, endpoint: ControllerEndpoint | None, credentials: Credentials
) -> HttpxDiscovery | None:
    if endpoint is None:
        return None
    return HttpxDiscovery(endpoint, credentials, settings.auth_scheme, _verify(settings))


def _package_source(
    settings: Settings, endpoint: ControllerEndpoint | None, credentials: Credentials
) -> HttpxPackageSource | None:
    if endpoint is None:
        return None
    return HttpxPackageSource(endpoint, credentials, settings.auth_scheme, _verify(settings))


def _pid_file(settings: Settings) -> Path:
    """Where entry-point children are recorded, so a restart can sweep what a killed run left."""
    return settings.work_dir.resolve() / PID_FILE


def _envs_dir(settings: Settings) -> Path | None:
    """Built python_envs are cached here, across restarts and package versions."""
    return settings.work_dir.resolve() / "envs" if settings.managed_env else None


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    trainer_env = providers.Object({})

    plan = providers.Singleton(build_plan, settings)
    endpoint = providers.Singleton(_endpoint, settings)
    refresher = providers.Singleton(_refresher, settings)
    credentials = providers.Singleton(_credentials, settings, refresher)
    discovery = providers.Singleton(_discovery, settings, endpoint, credentials)
    package_source = providers.Singleton(_package_source, settings, endpoint, credentials)
    unpacker = providers.Singleton(TarPackageUnpacker)
    connector = providers.Singleton(
        GrpcConnector,
        token=credentials,
        auth_scheme=settings.provided.auth_scheme,
        root_cert_path=settings.provided.grpc_root_cert_path,
        force_tls=settings.provided.grpc_tls,
    )
    trainer_factory = providers.Singleton(
        subprocess_trainer_factory,
        timeout=settings.provided.train_timeout,
        extra_env=trainer_env,
        python=settings.provided.python,
        envs_dir=providers.Callable(_envs_dir, settings),
        pid_file=providers.Callable(_pid_file, settings),
    )
    clock = providers.Singleton(SystemClock)
    lifecycle = providers.Factory(
        Lifecycle,
        plan=plan,
        discovery=discovery,
        package_source=package_source,
        unpacker=unpacker,
        connector=connector,
        trainer_factory=trainer_factory,
        clock=clock,
        credentials=credentials,
    )


async def close_adapters(lifecycle: Lifecycle) -> None:
    """Close the network clients the container opened (httpx keeps pooled connections)."""
    for adapter in (lifecycle.discovery, lifecycle.package_source, lifecycle.credentials.refresher):
        aclose = getattr(adapter, "aclose", None)
        if aclose is not None:
            await aclose()


def build_container(settings: Settings, trainer_env: Mapping[str, str] | None = None) -> Container:
    container = Container(settings=settings)
    if trainer_env:
        container.trainer_env.override(providers.Object(dict(trainer_env)))
    return container
