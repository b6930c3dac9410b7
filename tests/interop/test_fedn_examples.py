"""FEDn's own example compute packages, unchanged, on the stock client and fedclient in one session.

The packages are copied byte-for-byte from FEDn v0.33.0 (see fedn_examples/NOTICE.md).
``load-test`` declares a python_env (``fedn`` + ``numpy``) and its scripts import
``fedn.utils.helpers``; no ML environment is put on PATH for either client and
fedclient runs from the site venv (no numpy, no fedn), so a round can only finish if
each client builds that env and runs the scripts inside it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.interop.checks import check_aggregated, check_clean_exit, check_rounds, wait_for
from tests.interop.clients import start_fedclient, start_stock_client
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fedn_venv import venv_python
from tests.interop.fednnet import FednNetwork
from tests.interop.test_unchanged_fedn_package import _fedn

pytestmark = pytest.mark.interop

EXAMPLES = Path(__file__).resolve().parent / "fedn_examples"
# model.py makes 20 000 000 * factor float64s: 160 kB instead of 160 MB.
SIZE_FACTOR = "0.001"
MODEL_BYTES = 20_000 * 8


@pytest.fixture
def load_test_package(tmp_path: Path, fedn_venv: Path) -> Package:
    source = shutil.copytree(EXAMPLES / "load-test" / "client", tmp_path / "client")
    # The seed, as the example's README makes it (`python model.py` writes ../seed.npz), with
    # the FEDn venv's python (fedn + numpy); not `fedn run build`, which would also build the
    # python_env inside the package directory and so into the archive.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["FEDN_ARRAY_SIZE_FACTOR"] = SIZE_FACTOR
    subprocess.run([str(venv_python(fedn_venv)), "model.py"], cwd=source, env=env, check=True)
    _fedn(fedn_venv, "package", "create", "--path", str(source), "--name", "package.tgz", cwd=tmp_path)
    return Package(tmp_path / "package.tgz", tmp_path / "seed.npz", source, "load-test")


def test_fedn_load_test_example_builds_its_python_env_and_trains_on_both_clients(
    fedn_network: FednNetwork, load_test_package: Package
) -> None:
    setup_package(fedn_network, load_test_package)
    stock = start_stock_client(fedn_network, "stock-0", index=0, count=2, package_bin=None)
    ours = start_fedclient(fedn_network, "fedclient-1", index=1, count=2, package_bin=None)

    # Both clients build a venv with fedn + numpy before they come online.
    result = run_session(fedn_network, clients=2, rounds=2, round_timeout=120, client_timeout=480)

    check_rounds(result, rounds=2, clients=[stock, ours])
    check_aggregated(fedn_network, result, [stock, ours])
    for rnd in result["rounds"]:
        sizes = {v["sender_name"]: v["metrics"]["memory_size_bytes"] for v in rnd["validations"]}
        assert sizes == {stock.name: MODEL_BYTES, ours.name: MODEL_BYTES}, rnd["validations"]

    log = ours.log_text()
    built = re.search(r"python_env '\.load-test' built with (\S+) in ([\d.]+) s at (\S+)", log)
    assert built, log[-4000:]
    assert f"package interpreter: python -> {built.group(3)}/bin/python (the package's python_env)" in log
    # The stock client built its env the FEDn way, inside the unpacked package.
    assert list(stock.home.rglob(".load-test/bin/python")), "the stock client built no python_env"
    check_clean_exit(fedn_network, ours)
    fedn_network.finish(stock.proc)

    # Started again in the same directories, each client reuses the env it built.
    ours_again = start_fedclient(
        fedn_network, "fedclient-1-again", index=1, count=2, package_bin=None, home=ours.home
    )
    stock_again = start_stock_client(
        fedn_network, "stock-0-again", index=0, count=2, package_bin=None, home=stock.home
    )
    reuse = r"python_env '\.load-test' reused from \S+ \(Python [\d.]+, ([\d.]+) s\)"
    net = fedn_network
    wait_for("fedclient to reuse its env", lambda: re.search(reuse, ours_again.log_text()) is not None, net)
    wait_for("the stock client to listen", lambda: "Listening to task stream" in stock_again.log_text(), net)
    reused = re.search(reuse, ours_again.log_text())
    assert reused and "building python_env" not in ours_again.log_text()
    stock_log = stock_again.log_text()
    assert "already exists" in stock_log and "Creating a new environment" not in stock_log, stock_log[-3000:]
    print(
        f"\n[fedn example load-test] 2 rounds: stock client and fedclient both aggregated each round; "
        f"fedclient built the python_env with {built.group(1)} in {built.group(2)} s and reused it in "
        f"{reused.group(1)} s on a restart; the stock client (virtualenv + pip) built it in "
        f"{_stock_env_seconds(stock.log_text())} and reused it on a restart"
    )
    check_clean_exit(fedn_network, ours_again)


def _stock_env_seconds(log: str) -> str:
    """The stock client's env build time, from its log's second-resolution timestamps."""
    stamp = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \[INFO\] "
    start = re.search(stamp + "Creating a new environment in", log)
    end = re.search(stamp + "(?:No startup command found|To activate the virtual environment)", log)
    if not (start and end):
        return "? s (log lines not found)"
    elapsed = datetime.fromisoformat(end.group(1)) - datetime.fromisoformat(start.group(1))
    return f"about {elapsed.total_seconds():.0f} s"


def test_fedn_load_test_example_runs_with_the_sites_env_on_path_without_its_python_env(
    fedn_network: FednNetwork, load_test_package: Package, fedn_venv: Path
) -> None:
    """The issue's site: fedclient in a venv of its own, the ML env (numpy + fedn) first on PATH.

    ``--no-managed-env`` skips the python_env, so the scripts' ``import fedn`` only works
    because ``python`` is the one PATH gives, as the stock client's shell would run it.
    """
    setup_package(fedn_network, load_test_package)
    site_env = venv_python(fedn_venv).parent  # has numpy and fedn; fedclient's own venv has neither
    ours = start_fedclient(fedn_network, "fedclient-0", package_bin=site_env, args=("--no-managed-env",))

    result = run_session(fedn_network, clients=1, rounds=1, round_timeout=120)

    check_rounds(result, rounds=1, clients=[ours])
    check_aggregated(fedn_network, result, [ours])
    log = ours.log_text()
    assert "python_env 'python_env.yaml' not built (--no-managed-env)" in log
    assert f"package interpreter: python -> {site_env}/python (found on PATH)" in log
    assert not (ours.home / "work" / "envs").exists()
    check_clean_exit(fedn_network, ours)
