"""Validation and prediction tasks on their own, outside a training session, on a real FEDn 0.33.

* Validation only: FEDn 0.33 has no REST route or ``APIClient`` call for it (its sessions
  always train first). The driver does exactly what the controller does after a training
  round, ``CombinerInterface.submit({"task": "validation", ...})``, on the seed model
  (``fedn_session.validate`` has the source references).
* Prediction: ``APIClient.start_predictions(model_id=...)`` with ONE client: fedn 0.33's
  SQL prediction store keys records by ``prediction_id`` alone, so it keeps only one
  client's answer per prediction round.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interop.checks import accuracy, check_clean_exit
from tests.interop.clients import start_fedclient
from tests.interop.conftest import DIGITS, Package, setup_package
from tests.interop.fednnet import FednNetwork

pytestmark = pytest.mark.interop


def _digits_script(script: str, *args: Path) -> None:
    """Run an examples/digits entry point here, as a client would (shard 0 of 1)."""
    subprocess.run(
        [sys.executable, script, *map(str, args)],
        cwd=DIGITS,
        env={**os.environ, "FEDN_CLIENT_INDEX": "0", "FEDN_NUM_CLIENTS": "1"},
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_validation_only_pass(fedn_network: FednNetwork, digits_package: Package) -> None:
    seed_id = setup_package(fedn_network, digits_package)
    clients = [start_fedclient(fedn_network, f"fedclient-{i}", index=i, count=2) for i in range(2)]

    result = fedn_network.drive({"action": "validate", "clients": 2, "model_id": seed_id})

    shown = json.dumps(result, indent=1)[:4000]
    validations = result["validations"]
    assert sorted(v["sender_name"] for v in validations) == sorted(c.name for c in clients), shown
    assert all(v["model_id"] == seed_id for v in validations), shown
    for v in validations:
        assert 0.0 <= accuracy(v["metrics"]) <= 1.0, shown
    # Nothing trained: no round, no model besides the seed, no update reached the combiner.
    assert result["rounds"] == [] and result["models"] == [seed_id], shown
    assert fedn_network.received_updates() == [], fedn_network.received_updates()
    assert result["status_types"] == ["MODEL_VALIDATION"], shown
    assert result["session_status"] == "Created", shown  # the session record was never started
    for client in clients:
        check_clean_exit(fedn_network, client)


def test_prediction_records_our_clients_output(
    fedn_network: FednNetwork, digits_package: Package, tmp_path: Path
) -> None:
    # A model that predicts something: the zero seed trained once, here, by the package's own script.
    trained, expected = tmp_path / "trained.npz", tmp_path / "expected.json"
    _digits_script("train.py", digits_package.seed, trained)
    _digits_script("predict.py", trained, expected)
    model_id = setup_package(fedn_network, digits_package, seed=trained)
    client = start_fedclient(fedn_network, "fedclient-predict")

    prediction = fedn_network.drive({"action": "predict", "clients": 1, "model_id": model_id})

    [answer] = prediction["predictions"]
    assert answer["sender_name"] == client.name and answer["model_id"] == model_id, prediction
    # The record holds exactly what predict.py writes for that model.
    assert answer["data"] == json.loads(expected.read_text()), prediction
    assert answer["data"]["num_predictions"] > 0 and len(set(answer["data"]["predictions"])) > 1, prediction
    check_clean_exit(fedn_network, client)
