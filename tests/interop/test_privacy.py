"""The site's privacy policy against the real FEDn 0.33: what the server stores is what the policy allows.

fedclient runs from ``.site-privacy-venv`` (fedclient[privacy]: numpy and dp-accounting,
no scikit-learn, no fedn); examples/digits trains with this project's venv on PATH, as in
every interop test. The combiner keeps the updates it received (``INTEROP_KEEP_UPDATES``,
see fedn_launch.py), so each one is downloaded back from it by its id over the
combiner's own ModelService and compared with the global model it was trained from.

* clipping without noise: the stored update differs from the global model by at most
  the clipping norm (by exactly it: digits' raw update is about eight times larger);
* with noise: the rounds aggregate, and the stored update carries the noise;
* with the budget spent: the server records the client's ERROR status naming the budget
  and receives no update for that round.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fedclient.adapters import model_npz
from fedclient.adapters.combiner_grpc.link import GrpcConnector
from fedclient.adapters.dp_accountant import RdpAccountant
from fedclient.adapters.dp_mechanism import l2_norm
from fedclient.domain.model import CombinerAddress, Identity
from fedclient.domain.privacy import GaussianRounds

from tests.interop.checks import check_aggregated, check_clean_exit, check_rounds
from tests.interop.clients import Client, start_fedclient
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fednnet import FednNetwork
from tests.interop.procs import HOST
from tests.interop.site_venv import PRIVACY_EXTRAS, PRIVACY_SITE_VENV, ensure_site_venv

pytestmark = pytest.mark.interop

KEEP_UPDATES = {"server_env": {"INTEROP_KEEP_UPDATES": "1"}}


@pytest.fixture(scope="module")
def privacy_venv() -> Path:
    return ensure_site_venv(PRIVACY_SITE_VENV, PRIVACY_EXTRAS)


def _client(net: FednNetwork, venv: Path, name: str, policy: dict[str, Any]) -> Client:
    home = net.workdir / name
    home.mkdir(parents=True)
    site = home / "site.yaml"
    site.write_text(json.dumps({"privacy": policy}))  # JSON is YAML
    return start_fedclient(net, name, home=home, site_venv=venv, args=("--policy-file", str(site)))


def _download(net: FednNetwork, model_id: str, dest: Path) -> list[np.ndarray]:
    """A model (or update) as the combiner stores it, fetched by its id over its ModelService."""

    async def fetch() -> None:
        link = await GrpcConnector(None).connect(
            CombinerAddress(HOST, net.combiner_port), Identity("privacy-check", str(uuid.uuid4()))
        )
        try:
            await link.download(model_id, dest)
        finally:
            await link.close()

    asyncio.run(fetch())
    return model_npz.load_arrays(dest)


def _updates(net: FednNetwork, client: Client) -> dict[str, str]:
    """round id -> model_update_id of every update the combiner received from ``client``."""
    return {
        e["round_id"]: e["model_update_id"]
        for e in net.received_updates()
        if e["event"] == "received" and e["sender_name"] == client.name
    }


@pytest.mark.parametrize("fedn_network", [KEEP_UPDATES], indirect=True)
def test_without_noise_the_stored_update_is_within_the_clipping_norm(
    fedn_network: FednNetwork, digits_package: Package, privacy_venv: Path, tmp_path: Path
) -> None:
    bound = 0.05
    setup_package(fedn_network, digits_package)
    client = _client(
        fedn_network, privacy_venv, "fedclient-clip", {"clipping_norm": bound, "noise_multiplier": 0}
    )

    result = run_session(fedn_network, clients=1, rounds=1)

    check_rounds(result, rounds=1, clients=[client])
    check_aggregated(fedn_network, result, [client])
    [update_id] = _updates(fedn_network, client).values()
    stored = _download(fedn_network, update_id, tmp_path / "update.npz")
    assert digits_package.seed is not None
    seed = model_npz.load_arrays(digits_package.seed)  # round 1's global model
    assert [a.shape for a in stored] == [a.shape for a in seed]
    distance = l2_norm(
        [s.astype(np.float64) - g.astype(np.float64) for s, g in zip(stored, seed, strict=True)]
    )
    [raw] = re.findall(r"update clipped \(norm ([0-9.e+-]+), bound 0.05\)", client.log_text())
    print(
        f"\nround 1 update {update_id}: trained norm {float(raw):.4f}, "
        f"stored on the server {distance:.6f}, bound {bound}"
    )
    assert distance <= bound
    assert distance == pytest.approx(bound, rel=1e-6), "the raw update was larger: clipped to the bound"
    assert float(raw) > 2 * bound
    check_clean_exit(fedn_network, client)


@pytest.mark.parametrize("fedn_network", [KEEP_UPDATES], indirect=True)
def test_with_noise_the_rounds_aggregate(
    fedn_network: FednNetwork, digits_package: Package, privacy_venv: Path, tmp_path: Path
) -> None:
    policy = {"clipping_norm": 0.5, "noise_multiplier": 0.3, "delta": 1e-5, "epsilon_budget": 100}
    setup_package(fedn_network, digits_package)
    client = _client(fedn_network, privacy_venv, "fedclient-noise", policy)

    result = run_session(fedn_network, clients=1, rounds=2)

    check_rounds(result, rounds=2, clients=[client])
    check_aggregated(fedn_network, result, [client])
    updates = _updates(fedn_network, client)
    stored = _download(fedn_network, updates["1"], tmp_path / "update.npz")
    assert digits_package.seed is not None
    seed = model_npz.load_arrays(digits_package.seed)
    distance = l2_norm([s - g for s, g in zip(stored, seed, strict=True)])
    # clipped to 0.5, plus noise of σ 0.15 on each of 650 values (norm ≈ 0.15·√650 ≈ 3.8)
    assert 2.5 < distance < 5.5, distance
    spent = RdpAccountant().epsilon([GaussianRounds(0.3, 2)], 1e-5)
    assert f"ε spent {spent:.4g} of budget 100 at δ = 1e-05 after 2 rounds" in client.log_text()
    check_clean_exit(fedn_network, client)


def test_past_the_budget_the_server_records_the_error_and_no_update(
    fedn_network: FednNetwork, digits_package: Package, privacy_venv: Path
) -> None:
    # one round at noise multiplier 0.3 costs ε 20.4, two 32.4: a budget of 25 allows one
    policy = {"clipping_norm": 0.5, "noise_multiplier": 0.3, "delta": 1e-5, "epsilon_budget": 25}
    setup_package(fedn_network, digits_package)
    client = _client(fedn_network, privacy_venv, "fedclient-budget", policy)

    result = run_session(fedn_network, clients=1, rounds=2, round_timeout=20)

    first, second = result["rounds"]
    print(
        f"\nround 1: {first['status']}, aggregated {first['nr_aggregated_models']}; "
        f"round 2: {second['status']}, aggregated {second['nr_aggregated_models']}"
    )
    assert first["status"] == "Finished" and first["nr_aggregated_models"] == [1], first
    assert second["status"] != "Finished" or second["nr_aggregated_models"] != [1], second
    assert set(_updates(fedn_network, client)) == {"1"}, "no update for round 2 reached the server"
    statuses = fedn_network.rest("/api/v1/statuses/")["result"]
    errors = [
        s
        for s in statuses
        if (s.get("sender") or {}).get("name") == client.name and s.get("log_level") in ("ERROR", 4)
    ]
    [error] = errors
    print(
        "fedclient's ERROR status as the server recorded it:", json.dumps(error["status"], ensure_ascii=False)
    )
    assert "privacy budget exhausted" in error["status"] and "budget ε = 25" in error["status"]
    assert "privacy.epsilon_budget" in error["status"]
    assert error["session_id"] == result["session_id"]
    check_clean_exit(fedn_network, client)
