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
from fedclient.adapters.package_archive import build_package

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


@pytest.fixture
def sl_package(tmp_path: Path, digits_package: Package) -> Package:
    src = tmp_path / "sl-client"
    src.mkdir()
    (src / "fedn.yaml").write_text(MANIFEST)
    (src / "forward.py").write_text(textwrap.dedent(FORWARD))
    (src / "backward.py").write_text(textwrap.dedent(BACKWARD))
    archive = build_package(src, tmp_path / "sl.tgz")
    return Package(archive, digits_package.seed, src, "split-learning")


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
