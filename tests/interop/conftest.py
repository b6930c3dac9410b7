"""Fixtures for the interop tier: a real FEDn 0.33.0 network per test, on 127.0.0.1.

The FEDn venv is bootstrapped once per pytest session (a cached no-op after the first
build). A network that cannot start raises with the tails of every process log, so
these tests fail loudly in CI and never skip. When a test fails, the same log tails
(servers and clients) are attached to its report.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fedclient.adapters.package_build import build_package

from tests.interop.fedn_venv import ensure_fedn_venv
from tests.interop.fednnet import FednNetwork
from tests.interop.procs import port_is_free
from tests.interop.site_venv import ensure_site_venv

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples" / "digits"


@dataclass(frozen=True)
class Package:
    archive: Path  # the .tgz uploaded to the controller
    seed: Path | None  # numpyhelper npz seed model (None: split learning has none)
    source: Path  # the unpacked directory (for --local-package)
    name: str


@pytest.fixture(scope="session")
def fedn_venv() -> Path:
    return ensure_fedn_venv()


@pytest.fixture(scope="session")
def site_venv() -> Path:
    """fedclient installed alone (no numpy, no fedn): how every interop test runs it."""
    return ensure_site_venv()


@pytest.fixture
def fedn_network(
    request: pytest.FixtureRequest, tmp_path: Path, fedn_venv: Path, site_venv: Path
) -> Iterator[FednNetwork]:
    """A fresh network per test (about 4 s): no client or round leaks between tests.

    ``@pytest.mark.parametrize("fedn_network", [{"auth": True}], indirect=True)`` turns JWT on;
    ``{"auth": True, "tls": True}`` also puts the combiner on TLS at 127.0.0.1:443, which
    must be free again when the test ends.
    """
    options: dict[str, Any] = getattr(request, "param", {}) or {}
    network = FednNetwork(tmp_path / "fedn", venv=fedn_venv, **options)
    request.node.stash[_NETWORK] = network
    with network:
        yield network
    if network.tls:
        assert port_is_free(network.combiner_port), f"port {network.combiner_port} still taken after stop()"


@pytest.fixture(scope="session")
def digits_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """examples/digits as a FEDn .tgz (our build_package) and its zero seed model."""
    out = tmp_path_factory.mktemp("digits")
    seed = out / "seed.npz"
    subprocess.run([sys.executable, "build.py", str(seed)], cwd=DIGITS, check=True, capture_output=True)
    return Package(build_package(DIGITS, out / "digits.tgz"), seed, DIGITS, "digits")


def setup_package(
    network: FednNetwork, package: Package, seed: Path | None = None, helper: str = "numpyhelper"
) -> str | None:
    """Upload the package (active, with ``helper``) and a seed model before any client starts.

    ``seed`` replaces the package's zero seed model; returns the seed model's id (None
    for a package without one).
    """
    seed = seed or package.seed
    result = network.drive(
        {
            "action": "setup",
            "package": str(package.archive),
            "package_name": package.name,
            "helper": helper,
            "seed": str(seed) if seed else None,
        }
    )
    if result["seed_model"] is None:
        return None
    model_id: str = result["seed_model"]["model_id"]
    return model_id


def run_session(
    network: FednNetwork, clients: int, rounds: int, round_timeout: int = 60, client_timeout: int = 90
) -> dict[str, Any]:
    """``client_timeout``: how long to wait for the clients to come online (env builds take a while)."""
    return network.drive(
        {
            "action": "session",
            "clients": clients,
            "rounds": rounds,
            "round_timeout": round_timeout,
            "client_timeout": client_timeout,
            "timeout": 180,
        },
        timeout=280 + client_timeout,
    )


_NETWORK = pytest.StashKey[FednNetwork]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    network = item.stash.get(_NETWORK, None)
    if report.failed and network is not None and report.when == "call":
        report.sections.append(("FEDn network and client logs", network.log_tails()))
