"""A compute package written the FEDn way, used unchanged by the stock client and fedclient.

Nothing here comes from our code base: the package is numpy-only linear regression,
its fedn.yaml uses ``python <script>`` entry points, the seed model is made by FEDn's
``fedn run build`` and the archive by FEDn's ``fedn package create`` (files only, no
directory entries, owners and times kept), exactly what a FEDn user uploads.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.interop.checks import check_aggregated, check_clean_exit, check_rounds
from tests.interop.clients import start_fedclient, start_stock_client
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fedn_venv import venv_python
from tests.interop.fednnet import FednNetwork

pytestmark = pytest.mark.interop

FILES = {
    "fedn.yaml": """
        entry_points:
          build:
            command: python build.py
          startup:
            command: python startup.py
          train:
            command: python train.py
          validate:
            command: python validate.py
        """,
    ".fednignore": "seed.npz\n",
    "common.py": """
        import os
        import numpy as np

        TRUE_W, TRUE_B = np.array([1.0, -2.0, 3.0, 0.5, -1.0]), 0.3

        def data(seed):
            rng = np.random.default_rng(seed)
            x = rng.normal(size=(200, 5))
            return x, x @ TRUE_W + TRUE_B + 0.01 * rng.normal(size=200)

        def shard():
            return data(100 + int(os.environ.get("FEDN_CLIENT_INDEX", "0")))

        def load(path):
            with np.load(path) as f:  # numpyhelper layout: keys "0", "1", ...
                return [f[str(i)] for i in range(len(f.files))]

        def save(params, path):
            with open(path, "wb") as f:
                np.savez_compressed(f, **{str(i): p for i, p in enumerate(params)})

        def mse(params, x, y):
            return float(np.mean((x @ params[0] + params[1] - y) ** 2))
        """,
    "build.py": """
        import numpy as np
        from common import save
        save([np.zeros(5), np.zeros(1)], "seed.npz")
        """,
    "startup.py": """
        with open("startup-ran.txt", "a") as f:
            f.write("startup\\n")
        """,
    "train.py": """
        import json, sys
        from common import load, mse, save, shard
        w, b = load(sys.argv[1])
        x, y = shard()
        for _ in range(20):
            err = x @ w + b - y
            w, b = w - 0.1 * x.T @ err / len(y), b - 0.1 * err.mean()
        save([w, b], sys.argv[2])
        with open(sys.argv[2] + "-metadata", "w") as f:
            json.dump({"num_examples": len(y), "training_loss": mse([w, b], x, y)}, f)
        """,
    "validate.py": """
        import json, sys
        from common import data, load, mse, shard
        params = load(sys.argv[1])
        with open(sys.argv[2], "w") as f:
            json.dump({"training_loss": mse(params, *shard()), "test_loss": mse(params, *data(999))}, f)
        """,
}


def _fedn(venv: Path, *args: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    bin_dir = venv_python(venv).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # `python` = the FEDn venv's (has numpy)
    proc = subprocess.run([str(bin_dir / "fedn"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"fedn {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture
def fedn_style_package(tmp_path: Path, fedn_venv: Path) -> Package:
    source = tmp_path / "client"
    source.mkdir()
    for name, text in FILES.items():
        (source / name).write_text(textwrap.dedent(text).lstrip())
    _fedn(fedn_venv, "run", "build", "--path", str(source), cwd=tmp_path)
    _fedn(fedn_venv, "package", "create", "--path", str(source), "--name", "package.tgz", cwd=tmp_path)
    archive, seed = tmp_path / "package.tgz", source / "seed.npz"
    assert archive.is_file() and seed.is_file()
    return Package(archive, seed, source, "fedn-style")


def test_stock_and_fedclient_run_an_unchanged_fedn_package_and_its_startup(
    fedn_network: FednNetwork, fedn_style_package: Package
) -> None:
    setup_package(fedn_network, fedn_style_package)
    stock = start_stock_client(fedn_network, "stock-0", index=0, count=2)
    ours = start_fedclient(fedn_network, "fedclient-1", index=1, count=2)

    result = run_session(fedn_network, clients=2, rounds=2)

    check_rounds(result, rounds=2, clients=[stock, ours])
    check_aggregated(fedn_network, result, [stock, ours])
    losses = [max(v["metrics"]["test_loss"] for v in r["validations"]) for r in result["rounds"]]
    assert losses[1] < losses[0], losses

    # FEDn 0.33 runs `startup` once, in the unpacked package, before it connects
    # (docs/PROTOCOL.md §0, step 4): the stock client is the reference.
    for client in (stock, ours):
        marks = [m.read_text() for m in client.home.rglob("startup-ran.txt")]
        assert marks == ["startup\n"], f"{client.kind} client: startup ran {marks} under {client.home}"
    check_clean_exit(fedn_network, ours)
