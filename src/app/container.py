"""The composition root: one dependency-injector container wires adapters into the domain.

Adapters that hold something open (the controller's HTTP clients, the token refresher's,
the gRPC connector's shared channels, the operator's views with the metrics server) are
``providers.Resource``s: the container opens
them when the client is first built and closes them in ``shutdown_resources()``. So are
the work dir's lock and its identity file: resolving a provider writes nothing to disk;
``client_lifecycle`` takes the lock and keeps the identity when the client starts.
``client_lifecycle`` is that build → run → close, written once for every entry point
(``fedclient run``, the sandbox's clients, ``Client``, ``InProcessClient``). Each client's
own parts (links, outbox, task runner, assigner, package setup, supervisor) are wired by
``app.client_graph``: one graph, its parts new at each ``lifecycle`` call. Tests build the container with
real settings and override providers with the in-memory fakes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from dependency_injector import containers, providers

from ..adapters.clock import PythonRandom, SystemClock, UuidIds
from ..adapters.combiner_grpc.link import GrpcConnector
from ..adapters.controller_http import ControllerEndpoint, HttpxDiscovery, HttpxPackageSource
from ..adapters.controller_http.refresh import HttpTokenRefresher
from ..adapters.outbox_store import FileOutboxStore
from ..adapters.package_archive import TarPackageUnpacker
from ..adapters.package_cache import DiskPackageCache
from ..adapters.scratch import TempScratch
from ..adapters.system_usage import system_usage_probe
from ..adapters.trainers import PID_FILE, subprocess_trainer_factory
from ..adapters.trainers.callback_trainer import Callbacks, callback_trainer_factory, load_entrypoint
from ..domain.credentials import Credentials
from ..domain.errors import ConfigError
from ..domain.lifecycle import Lifecycle
from ..domain.model import Identity
from ..domain.observe import NULL_OBSERVER, Observer
from ..domain.policy import SitePolicy
from ..domain.ports import TrainerFactory
from ..domain.redaction import register_secrets
from .client_graph import ClientGraph, build_client
from .plan import build_plan, package_extract_dir
from .policy import max_model_bytes, privacy_budget, site_policy
from .setting_names import spell
from .settings import Settings
from .workdir import extract_dir_lock, keep_identity, work_dir_lock

log = logging.getLogger("fedclient")
T = TypeVar("T")


def _endpoint(settings: Settings) -> ControllerEndpoint | None:
    if not settings.api_url:
        return None
    return ControllerEndpoint.build(settings.api_url, settings.api_port, settings.custom_url_prefix)


def _verify(settings: Settings) -> bool | str:
    if settings.insecure:
        return False
    if settings.api_ca_bundle is not None:
        return str(settings.api_ca_bundle)
    if settings.grpc_root_cert_path is not None and settings.connect_api_secure:
        return str(settings.grpc_root_cert_path)  # one custom CA for the whole federation
    return settings.connect_api_secure


def _client_cert(settings: Settings) -> tuple[str, str] | None:
    if settings.client_cert_path is None and settings.client_key_path is None:
        return None
    if settings.client_cert_path is None or settings.client_key_path is None:
        raise ConfigError("mutual TLS needs both --client-cert and --client-key")
    return str(settings.client_cert_path), str(settings.client_key_path)


def _refresher(settings: Settings) -> HttpTokenRefresher | None:
    uri, refresh_token = settings.refresh_token_uri, settings.refresh_token_value
    if not uri and not refresh_token:
        return None
    if not uri or not refresh_token:
        missing = "FEDN_AUTH_REFRESH_TOKEN_URI" if not uri else "FEDN_AUTH_REFRESH_TOKEN"
        log.warning("token refresh is off: %s is not set", missing)
        return None
    return HttpTokenRefresher(uri, refresh_token, _verify(settings))


async def _opened(adapter: T) -> AsyncIterator[T]:
    """A Resource's life: the adapter as built, ``aclose()``d at ``shutdown_resources()`` (if it has one)."""
    try:
        yield adapter
    finally:
        aclose = getattr(adapter, "aclose", None)
        if aclose is not None:
            await aclose()


def _credentials(settings: Settings, refresher: HttpTokenRefresher | None) -> Credentials:
    """One token for every channel; each refreshed token is scrubbed from logs like the first."""
    return Credentials(
        settings.token_value,
        refresher,
        SystemClock(),
        on_new_token=lambda token: register_secrets([token]),
        random=PythonRandom(),
        names=spell,
    )


def _discovery(
    settings: Settings, endpoint: ControllerEndpoint | None, credentials: Credentials
) -> HttpxDiscovery | None:
    if endpoint is None:
        return None
    return HttpxDiscovery(
        endpoint, credentials, settings.auth_scheme, _verify(settings), client_cert=_client_cert(settings)
    )


def _package_source(
    settings: Settings,
    endpoint: ControllerEndpoint | None,
    credentials: Credentials,
    policy: SitePolicy,
    observer: Observer,
) -> HttpxPackageSource | None:
    if endpoint is None:
        return None
    return HttpxPackageSource(
        endpoint,
        credentials,
        settings.auth_scheme,
        _verify(settings),
        max_bytes=policy.archive.max_download_bytes,
        client_cert=_client_cert(settings),
        observer=observer,
    )


def _work_dir(settings: Settings) -> Path:
    return settings.work_dir.resolve()


def _locked(work_dir: Path, extract_dir: Path | None, origin: str) -> Iterator[Path]:
    """A Resource's life: the work dir (and the package extract dir) locked until shutdown."""
    with work_dir_lock(work_dir), extract_dir_lock(extract_dir, origin):
        yield work_dir


def _identity_file(settings: Settings, work_dir: Path, identity: Identity) -> Identity:
    """The identity made or completed from the work dir, kept there (given whole: nothing written)."""
    if settings.name and settings.client_id:
        return identity
    return keep_identity(work_dir, identity)


def _shown(
    views: Callable[[Identity], AbstractContextManager[Observer]] | None, identity: Identity
) -> Iterator[Observer | None]:
    """A Resource's life: what shows the client to its operator, opened with its kept identity."""
    if views is None:
        yield None
        return
    with views(identity) as observer:
        yield observer


def _outbox_store(settings: Settings) -> FileOutboxStore:
    return FileOutboxStore(settings.work_dir.resolve() / "outbox")


def _pid_file(settings: Settings) -> Path:
    """Where entry-point children are recorded, so a restart can sweep what a killed run left."""
    return settings.work_dir.resolve() / PID_FILE


def _envs_dir(settings: Settings) -> Path | None:
    """Built python_envs are cached here, across restarts and package versions."""
    return settings.work_dir.resolve() / "envs" if settings.managed_env else None


def _noise_generator(seed: int | None) -> Any:
    """The privacy noise's source: OS entropy (only tests override ``noise_seed``; no setting can)."""
    from ..adapters.dp_mechanism import make_generator

    return make_generator(seed)


def _trainer_factory(
    base: TrainerFactory,
    settings: Settings,
    policy: SitePolicy,
    generator: Callable[[], Any],
    observer: Observer,
) -> TrainerFactory:
    """``base`` as it is, or, when the site policy has a privacy section, every trainer it builds
    wrapped so that what leaves is clipped, noised and charged to the budget (docs/PRIVACY.md)."""
    if policy.privacy is None:
        return base
    budget = privacy_budget(settings, policy)
    from ..adapters.trainers.private import PrivateTrainerFactory

    return PrivateTrainerFactory(base, policy.privacy, budget, generator(), observer)


def _read_only_view(settings: Settings, policy: SitePolicy) -> bool:
    """Entry points see a downloaded package read-only; a --local-package dir is left as it is."""
    return policy.read_only_package and settings.local_package is None


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    trainer_env = providers.Object({})
    # Where progress and status go (app.operators overrides it with a StatusBoard).
    observer = providers.Object(NULL_OBSERVER)

    policy = providers.Singleton(site_policy, settings)
    plan = providers.Singleton(build_plan, settings, policy)  # reads the kept identity, writes nothing
    work_dir = providers.Callable(_work_dir, settings)
    # The package extract dir locked with the work dir (None for the in-process client), and
    # how the lock's refusal names it (the CLI says which setting it came from).
    extract_dir = providers.Callable(package_extract_dir, settings)
    extract_dir_origin = providers.Object("--package-extract-dir")
    work_dir_lock = providers.Resource(_locked, work_dir, extract_dir, extract_dir_origin)
    identity_file = providers.Resource(_identity_file, settings, work_dir, plan.provided.identity)
    # What shows the client to its operator (fedclient run: the status board, the terminal
    # display, the metrics endpoint), given the kept identity; None: nothing is shown.
    views = providers.Object(None)
    operator_views = providers.Resource(_shown, views, identity_file)
    endpoint = providers.Singleton(_endpoint, settings)
    refresher = providers.Resource(_opened, providers.Callable(_refresher, settings))
    credentials = providers.Singleton(_credentials, settings, refresher)
    discovery = providers.Resource(_opened, providers.Callable(_discovery, settings, endpoint, credentials))
    package_source = providers.Resource(
        _opened, providers.Callable(_package_source, settings, endpoint, credentials, policy, observer)
    )
    unpacker = providers.Singleton(
        TarPackageUnpacker, policy.provided.archive, read_only=policy.provided.read_only_package
    )
    # One gRPC channel per combiner for every client of this container (simulate's many clients).
    share_channels = providers.Object(False)
    connector = providers.Resource(
        _opened,
        providers.Factory(
            GrpcConnector,
            share_channels=share_channels,
            token=credentials,
            auth_scheme=settings.provided.auth_scheme,
            root_cert_path=settings.provided.grpc_root_cert_path,
            force_tls=settings.provided.grpc_tls,
            max_model_bytes=providers.Callable(max_model_bytes, settings),
            client_cert_path=settings.provided.client_cert_path,
            client_key_path=settings.provided.client_key_path,
            insecure=settings.provided.insecure,
            observer=observer,
        ),
    )
    # How the package's code is run (the in-process client overrides it with its callbacks)...
    base_trainer_factory = providers.Singleton(
        subprocess_trainer_factory,
        timeout=settings.provided.train_timeout,
        extra_env=trainer_env,
        python=settings.provided.python,
        envs_dir=providers.Callable(_envs_dir, settings),
        limits=policy.provided.limits,
        pid_file=providers.Callable(_pid_file, settings),
        read_only_package=providers.Callable(_read_only_view, settings, policy),
        read_only_root=providers.Callable(package_extract_dir, settings),
        setting_names=providers.Object(spell),
    )
    # ...and, with a privacy section in the site policy, the guard around it. The noise comes
    # from fresh OS entropy; tests override noise_seed for a deterministic generator.
    noise_seed = providers.Object(None)
    noise_generator = providers.Singleton(_noise_generator, noise_seed)
    trainer_factory = providers.Singleton(
        _trainer_factory, base_trainer_factory, settings, policy, noise_generator.provider, observer
    )
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIds)
    random = providers.Singleton(PythonRandom)
    usage_probe = providers.Singleton(system_usage_probe)
    # Holds nothing open (each save and load is whole), so no Resource: nothing to close.
    outbox_store = providers.Singleton(_outbox_store, settings)
    package_cache = providers.Singleton(DiskPackageCache)
    scratch = providers.Singleton(TempScratch)
    # Each call builds a new client from the one client graph (app.client_graph); simulate
    # gives each client's own plan, connector, trainer and outbox store as call arguments.
    client_graph = providers.Singleton(ClientGraph)
    lifecycle = providers.Factory(
        build_client,
        client_graph,
        plan=plan,
        discovery=discovery,
        package_source=package_source,
        unpacker=unpacker,
        connector=connector,
        trainer_factory=trainer_factory,
        clock=clock,
        observer=observer,
        credentials=credentials,
        usage_probe=usage_probe,
        outbox_store=outbox_store,
        package_cache=package_cache,
        scratch=scratch,
        ids=ids,
        random=random,
    )


@contextlib.asynccontextmanager
async def client_lifecycle(
    container: Container, views: Callable[[Identity], AbstractContextManager[Observer]] | None = None
) -> AsyncIterator[Lifecycle]:
    """The client the container builds, and everything it opened closed when the block ends.

    First the work dir is locked and the identity kept in it (``work_dir_lock``,
    ``identity_file``); then ``views`` (if given) opens what shows the client to its operator,
    labelled with that identity (``operator_views``), and becomes the observer; then the
    client is built. On the way out every resource closes (the views, channels, HTTP clients,
    the lock), each after those that depend on it.
    """
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(_shutdown, container)
        container.work_dir_lock()
        container.identity_file()
        if views is not None:
            container.views.override(providers.Object(views))
            container.observer.override(providers.Object(container.operator_views()))
        yield await container.lifecycle()


async def _shutdown(container: Container) -> None:
    closing = container.shutdown_resources()  # None when nothing asynchronous was opened
    if closing is not None:
        await closing


def build_container(
    settings: Settings,
    trainer_env: Mapping[str, str] | None = None,
    callbacks: Callbacks | None = None,
    observer: Observer | None = None,
) -> Container:
    """``callbacks`` (or ``settings.entrypoint``): the in-process client, the user's code as the trainer.

    ``observer``: where progress and status go (the operator views' StatusBoard).
    """
    container = Container(settings=settings)
    if trainer_env:
        container.trainer_env.override(providers.Object(dict(trainer_env)))
    if observer is not None:
        container.observer.override(providers.Object(observer))
    if callbacks is None and settings.entrypoint:
        callbacks = load_entrypoint(settings.entrypoint)  # imported once, kept for every task
    if callbacks is not None:
        container.base_trainer_factory.override(providers.Object(callback_trainer_factory(callbacks)))
        container.plan.override(providers.Singleton(build_plan, settings, in_process=True))
        container.extract_dir.override(providers.Object(None))  # nothing is unpacked
    return container
