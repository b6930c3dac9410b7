"""`fedclient run --local-package DIR` trains and validates from a package on disk, never downloading one.

FEDn still needs an active package on the server to run a session (the controller reads
its helper), so the test uploads one; the proof that the client did not fetch it is in
the controller's own records: the client registered with ``package: local`` and no
``/api/v1/packages/download`` request reached the controller.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.interop.checks import check_aggregated, check_clean_exit, check_rounds
from tests.interop.clients import start_fedclient
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fednnet import FednNetwork

pytestmark = pytest.mark.interop


def test_local_package_completes_rounds(
    fedn_network: FednNetwork, digits_package: Package, tmp_path: Path
) -> None:
    setup_package(fedn_network, digits_package)
    local = shutil.copytree(digits_package.source, tmp_path / "local-digits")
    client = start_fedclient(fedn_network, "fedclient-local", local_package=local)

    result = run_session(fedn_network, clients=1, rounds=2)

    check_rounds(result, rounds=2, clients=[client])
    check_aggregated(fedn_network, result, [client])
    [record] = [c for c in fedn_network.rest("/api/v1/clients/")["result"] if c["name"] == client.name]
    assert record["package"] == "local", record
    controller_log = (fedn_network.workdir / "controller.log").read_text(errors="replace")
    assert "/api/v1/packages/" in controller_log  # our own setup upload is logged ...
    assert "packages/download" not in controller_log  # ... but no client download
    assert "packages/checksum" not in controller_log

    check_clean_exit(fedn_network, client)
