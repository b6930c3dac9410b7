"""FEDn's ``splitlearning_diabetes`` example, unchanged, on the stock client and fedclient in one session.

The package (copied byte-for-byte from FEDn v0.33.0, see fedn_examples/NOTICE.md) is
vertical federated learning on the Pima diabetes table: each client holds four of the
eight features and a small torch model that turns them into embeddings; the combiner
runs FEDn's own ``splitlearningagg`` (torch), which holds the labels, trains the top
layer and sends each client its gradients. Everything is as the example's README has a
site run it:

* the data step (``python3 data.py`` in ``client/``) makes ``labels.pt`` for the combiner
  (``FEDN_LABELS_PATH``); ``fedn package create`` packs ``client/`` (``.fednignore``
  leaves the data out);
* each client starts in a directory holding ``data/diabetes.csv``, with
  ``FEDN_PACKAGE_EXTRACT_DIR=package`` (FEDn's default), so the package's ``startup``
  finds ``../data/diabetes.csv`` and writes both clients' splits into the package dir,
  and ``FEDN_DATA_PATH=./data/clients/N/diabetes.pt`` picks a client's half;
* the site's ML environment (torch, pandas, scikit-learn, fedn: ``.fedn-torch-venv``) is
  first on PATH.

The one thing not as published: the example's ``python_env`` pins torch 2.4.1, whose Linux
wheel on PyPI is a CUDA build of about 2.5 GB, so neither client builds it here.
fedclient is told so with ``--no-managed-env``; the stock client has no such switch, but
reuses an env directory that already exists (``package/.splitlearning``), so the harness
puts the site's env there first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.checks import check_clean_exit
from tests.interop.clients import start_fedclient, start_stock_client
from tests.interop.conftest import Package, setup_package
from tests.interop.fedn_venv import TORCH_VENV, ensure_fedn_venv, venv_python
from tests.interop.fednnet import FednNetwork
from tests.interop.test_unchanged_fedn_package import _fedn

pytestmark = [pytest.mark.interop, pytest.mark.torch]

EXAMPLE = Path(__file__).resolve().parent / "fedn_examples" / "splitlearning_diabetes"
ROUNDS = 3
FORWARD_DONE = "Forward pass completed."
BACKWARD_DONE = "Backward pass completed. Status: finished_backward"


@pytest.fixture(scope="session")
def fedn_torch_venv() -> Path:
    return ensure_fedn_venv(TORCH_VENV)


@pytest.fixture
def diabetes(tmp_path: Path, fedn_torch_venv: Path, site_venv: Path) -> Iterator[tuple[FednNetwork, Package]]:
    """The example's data step and package, and a network whose combiner holds its labels."""
    example = shutil.copytree(EXAMPLE, tmp_path / "splitlearning_diabetes")
    client = example / "client"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    subprocess.run([str(venv_python(fedn_torch_venv)), "data.py"], cwd=client, env=env, check=True)
    labels = client / "data" / "clients" / "labels.pt"
    assert labels.is_file() and (client / "data" / "clients" / "2" / "diabetes.pt").is_file()
    _fedn(fedn_torch_venv, "package", "create", "--path", str(client), "--name", "package.tgz", cwd=tmp_path)
    package = Package(tmp_path / "package.tgz", None, client, "splitlearning_diabetes")
    server_env = {"FEDN_LABELS_PATH": str(labels)}  # FEDn's aggregator reads the labels from here
    network = FednNetwork(tmp_path / "fedn", venv=fedn_torch_venv, server_env=server_env)
    with network:
        yield network, package


def site_home(net: FednNetwork, name: str) -> Path:
    """A client's start directory, laid out as the example's README has it: ``data/diabetes.csv``."""
    home = net.workdir / name
    (home / "data").mkdir(parents=True)
    shutil.copy(EXAMPLE / "data" / "diabetes.csv", home / "data" / "diabetes.csv")
    return home


def test_fedn_splitlearning_diabetes_example_trains_on_both_clients(
    diabetes: tuple[FednNetwork, Package], fedn_torch_venv: Path
) -> None:
    net, package = diabetes
    setup_package(net, package, helper="splitlearninghelper")
    site_env = venv_python(fedn_torch_venv).parent

    stock_home = site_home(net, "stock-0")
    (stock_home / "package").mkdir()
    (stock_home / "package" / ".splitlearning").symlink_to(fedn_torch_venv)  # see the module docstring
    stock = start_stock_client(
        net,
        "stock-0",
        home=stock_home,
        package_bin=site_env,
        env={"FEDN_DATA_PATH": "./data/clients/1/diabetes.pt"},
    )
    ours = start_fedclient(
        net,
        "fedclient-1",
        home=site_home(net, "fedclient-1"),
        package_bin=site_env,
        env={"FEDN_PACKAGE_EXTRACT_DIR": "package", "FEDN_DATA_PATH": "./data/clients/2/diabetes.pt"},
        args=("--no-managed-env",),
    )
    result = net.drive(
        {
            "action": "splitlearning",
            "clients": 2,
            "rounds": ROUNDS,
            "model_id": "1",  # as the example's notebook: split learning has no seed model
            "client_timeout": 180,
            "timeout": 400,
            "round_timeout": 120,
            "expect": {FORWARD_DONE: 2 * 2 * ROUNDS, BACKWARD_DONE: 2 * ROUNDS},
        },
        timeout=700,
    )
    shown = json.dumps(result, indent=1)[:5000]
    rounds = sorted(result["rounds"], key=lambda r: int(r["round_id"]))
    assert [r["status"] for r in rounds] == ["Finished"] * ROUNDS, shown

    for client in (stock, ours):
        texts = [s["status"] for s in result["statuses"] if s["sender_name"] == client.name]
        assert texts.count(FORWARD_DONE) == 2 * ROUNDS, (client.kind, texts)  # training + inference passes
        assert texts.count(BACKWARD_DONE) == ROUNDS, (client.kind, texts)
        model = client.home / "package" / "local_models" / f"{client.client_id}.pth"
        assert model.is_file(), f"{client.kind}: no client-side model at {model}\n{client.log_text()[-3000:]}"
    errors = [s for s in result["statuses"] if s["log_level"] in ("ERROR", 4)]
    assert errors == [], errors

    # FEDn's aggregator trained the top layer on both clients' embeddings, one step a round,
    # and scored the inference passes against the labels only the combiner holds.
    combiner_log = (net.workdir / "combiner.log").read_text(errors="replace")
    train_loss = [float(x) for x in re.findall(r"Train Loss: ([\d.]+)", combiner_log)]
    scores = re.findall(r"Test Loss: ([\d.]+), Test Accuracy: ([\d.]+)", combiner_log)
    test_loss = [float(loss) for loss, _ in scores]
    accuracy = [float(acc) for _, acc in scores]
    assert len(train_loss) == ROUNDS and len(scores) == ROUNDS, combiner_log[-4000:]
    # Each round's step (server and both clients) lowered the loss, on the training and the test rows.
    assert train_loss == sorted(set(train_loss), reverse=True), train_loss
    assert test_loss == sorted(set(test_loss), reverse=True), test_loss

    log = ours.log_text()
    assert f"package unpacked into {ours.home / 'package'} (FEDN_PACKAGE_EXTRACT_DIR)" in log
    assert "python_env 'python_env.yaml' not built (--no-managed-env)" in log
    assert f"package interpreter: python -> {site_env}/python (found on PATH)" in log
    print(
        f"\n[fedn example splitlearning_diabetes] {ROUNDS} rounds, stock client + fedclient: "
        f"every forward and backward pass completed on both; train loss {train_loss}, "
        f"test loss {test_loss}, test accuracy {accuracy}"
    )
    check_clean_exit(net, ours)
