"""A split-learning session on the real FEDn 0.33 controller and combiner: fedclient and the stock client.

Stock 0.33.0 cannot start one (its start route fails with HTTP 500, and its aggregator
needs torch); the harness shims both (see fedn_launch.py). Everything on the client
side is FEDn's own: the FORWARD/BACKWARD task requests, the model service that takes
the embeddings and serves the gradients, the statuses and backward completions.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fedclient.adapters.package_build import build_package

from tests.interop.checks import check_clean_exit
from tests.interop.clients import Client, start_fedclient, start_stock_client
from tests.interop.conftest import Package, setup_package
from tests.interop.fednnet import FednNetwork

pytestmark = pytest.mark.interop

FORWARD = """
    import json, sys
    import numpy as np
    client_id, out, inference = sys.argv[1:4]
    embeddings = np.arange(8, dtype=float).reshape(4, 2)
    with open(out, "wb") as f:  # an open file: numpy adds no suffix
        np.savez_compressed(f, **{client_id: embeddings})
    json.dump({"num_examples": 4}, open(out + "-metadata", "w"))
    with open("forward.log", "a") as log:
        log.write(json.dumps({"client_id": client_id, "inference": inference}) + "\\n")
"""
BACKWARD = """
    import json, sys
    import numpy as np
    gradients, client_id = sys.argv[1:3]
    data = np.load(gradients)
    with open("backward.log", "a") as log:
        log.write(json.dumps({"client_id": client_id, "keys": sorted(data.files),
                              "mean": float(np.mean(data[client_id]))}) + "\\n")
"""
MANIFEST = """
entry_points:
  forward:
    command: python forward.py
  backward:
    command: python backward.py
"""
ROUNDS = 2


FAILING_BACKWARD = """
    import sys
    print("backward: gradient shape mismatch", file=sys.stderr)
    sys.exit(3)
"""


def make_package(tmp_path: Path, seed: Path, backward: str) -> Package:
    src = tmp_path / "sl-client"
    src.mkdir()
    (src / "fedn.yaml").write_text(MANIFEST)
    (src / "forward.py").write_text(textwrap.dedent(FORWARD))
    (src / "backward.py").write_text(textwrap.dedent(backward))
    archive = build_package(src, tmp_path / "sl.tgz")
    return Package(archive, seed, src, "split-learning")


@pytest.fixture
def sl_package(tmp_path: Path, digits_package: Package) -> Package:
    return make_package(tmp_path, digits_package.seed, BACKWARD)


def script_log(client: Client, name: str) -> list[dict[str, Any]]:
    found = sorted(client.home.rglob(name))
    assert len(found) == 1, f"{client.name}: {name} at {found}\n{client.log_text()[-3000:]}"
    return [json.loads(line) for line in found[0].read_text().splitlines()]


def test_split_learning_session_with_both_clients(fedn_network: FednNetwork, sl_package: Package) -> None:
    net = fedn_network
    model_id = setup_package(net, sl_package)
    stock = start_stock_client(net, "stock-sl", index=0, count=2)
    ours = start_fedclient(net, "fedclient-sl", index=1, count=2)
    result = net.drive(
        {
            "action": "splitlearning",
            "clients": 2,
            "rounds": ROUNDS,
            "model_id": model_id,
            "timeout": 90,
            "round_timeout": 30,
            "expect": {
                "Forward pass completed.": 2 * 2 * ROUNDS,  # per client: training + inference passes
                "Backward pass completed. Status: finished_backward": 2 * ROUNDS,
            },
        },
        timeout=300,
    )
    shown = json.dumps(result, indent=1)[:5000]
    rounds = sorted(result["rounds"], key=lambda r: int(r["round_id"]))
    assert [r["status"] for r in rounds] == ["Finished"] * ROUNDS, shown

    ids = sorted([stock.client_id, ours.client_id])
    passes = net.split_learning_passes()
    # Each round: a training forward pass, then (validate=True) an inference forward pass.
    assert (
        sorted((p["inference"], p["clients"]) for p in passes)
        == [(False, ids)] * ROUNDS + [(True, ids)] * ROUNDS
    ), passes
    assert all(shape == [4, 2] for p in passes for shape in p["shapes"].values()), passes

    for client in (stock, ours):
        forwards = script_log(client, "forward.log")
        assert sorted(f["inference"] for f in forwards) == ["False"] * ROUNDS + ["True"] * ROUNDS, forwards
        assert {f["client_id"] for f in forwards} == {client.client_id}
        backwards = script_log(client, "backward.log")
        assert backwards == [{"client_id": client.client_id, "keys": ids, "mean": 0.5}] * ROUNDS, backwards
        texts = [s["status"] for s in result["statuses"] if s["sender_name"] == client.name]
        assert texts.count("Forward pass completed.") == 2 * ROUNDS, (client.kind, texts)
        assert texts.count("Backward pass completed. Status: finished_backward") == ROUNDS, (
            client.kind,
            texts,
        )
    errors = [s for s in result["statuses"] if s["log_level"] in ("ERROR", 4)]
    assert errors == [], errors
    print("split learning:", json.dumps({"rounds": result["rounds"], "passes": passes}))
    check_clean_exit(net, ours)


def test_a_failed_backward_pass_is_an_error_for_fedclient_and_a_success_for_the_stock_client(
    fedn_network: FednNetwork, tmp_path: Path, digits_package: Package
) -> None:
    net = fedn_network
    model_id = setup_package(net, make_package(tmp_path, digits_package.seed, FAILING_BACKWARD))
    stock = start_stock_client(net, "stock-bad", index=0, count=2)
    ours = start_fedclient(net, "fedclient-bad", index=1, count=2)
    result = net.drive(
        {
            "action": "splitlearning",
            "clients": 2,
            "rounds": 1,
            "model_id": model_id,
            "validate": False,
            "round_timeout": 10,  # the combiner waits this long for the completion fedclient does not send
            "timeout": 90,
            "expect": {"Backward pass completed. Status: finished_backward": 1},
        },
        timeout=150,
    )
    statuses = result["statuses"]

    def said(client: Client) -> list[tuple[str, Any]]:
        return [(s["status"], s["log_level"]) for s in statuses if s["sender_name"] == client.name]

    # FEDn's client reports the failed script as a finished backward pass (and a completion).
    assert ("Backward pass completed. Status: finished_backward", "AUDIT") in said(stock), said(stock)
    ours_said = said(ours)
    assert not [t for t, _ in ours_said if t.startswith("Backward pass completed")], ours_said
    [error] = [t for t, level in ours_said if level == "ERROR"]
    assert error.startswith("backward task for model ") and "exit code 3" in error, error
    assert "gradient shape mismatch" in error
    print("fedclient's ERROR status as the server recorded it:", json.dumps(error))
    check_clean_exit(net, ours)
