"""Clients for a ``FednNetwork``: our ``fedclient run`` and FEDn's stock ``fedn client start``.

Each client gets its own home directory (the stock client unpacks into ``./package``
of its cwd, ours into ``--work-dir``), its own digits shard through
``FEDN_CLIENT_INDEX``/``FEDN_NUM_CLIENTS``, an explicit client id (so tests can look
for it in the server's records) and a log file beside the servers' logs.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.interop.fedn_venv import venv_python
from tests.interop.fednnet import FednNetwork
from tests.interop.procs import HOST, Proc

OUR_BIN = Path(sys.executable).parent
FEDCLIENT = OUR_BIN / "fedclient"


@dataclass
class Client:
    kind: str  # "fedclient" or "stock"
    name: str
    client_id: str
    home: Path
    proc: Proc

    def log_text(self) -> str:
        return self.proc.log.read_text(errors="replace")


def _env(index: int, count: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDN_", "AWS_"))}
    env.pop("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", None)  # trust roots only where a test asks for them
    env.update(FEDN_CLIENT_INDEX=str(index), FEDN_NUM_CLIENTS=str(count), PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def start_fedclient(
    net: FednNetwork,
    name: str,
    index: int = 0,
    count: int = 1,
    *,
    local_package: Path | None = None,
    token: str | None = None,
    env: dict[str, str] | None = None,
) -> Client:
    """``fedclient run`` against ``net``; ``env`` adds variables (e.g. FEDN_GRPC_ROOT_CERT_PATH)."""
    assert FEDCLIENT.exists(), f"the fedclient console script is not installed next to {sys.executable}"
    home = net.workdir / name
    home.mkdir(parents=True)
    client_id = str(uuid.uuid4())
    cmd = [str(FEDCLIENT), "run", "--api-url", net.api_url, "--name", name, "--client-id", client_id]
    cmd += ["--work-dir", str(home / "work"), "--log-level", "INFO"]
    if local_package is not None:
        cmd += ["--local-package", str(local_package)]
    if token is not None:
        cmd += ["--token", token]
    proc = net.spawn(name, cmd, cwd=home, env=_env(index, count, env))
    return Client("fedclient", name, client_id, home, proc)


def start_stock_client(
    net: FednNetwork,
    name: str,
    index: int = 0,
    count: int = 1,
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    home: Path | None = None,
    with_id: bool = True,
) -> Client:
    """FEDn 0.33's own client, from the FEDn venv.

    It runs ``python train.py`` through bash with whichever ``python`` is first on
    PATH, so our venv's bin (numpy + scikit-learn) goes first; the client itself is
    the FEDn venv's ``fedn`` script and keeps its own interpreter. ``env`` adds
    variables (e.g. GRPC_DEFAULT_SSL_ROOTS_FILE_PATH for a test CA). ``with_id=False``
    gives neither --name nor --client-id (client_id is then ""); ``home`` reuses a directory.
    """
    if home is None:
        home = net.workdir / name
        home.mkdir(parents=True)
    client_id = str(uuid.uuid4()) if with_id else ""
    env = _env(index, count, env)
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    env["PATH"] = f"{OUR_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["FEDN_PACKAGE_EXTRACT_DIR"] = "package"
    fedn = venv_python(net.venv).parent / "fedn"
    cmd = [str(fedn), "client", "start", "--api-url", f"http://{HOST}", "--api-port", str(net.api_port)]
    if with_id:
        cmd += ["--name", name, "--client-id", client_id]
    if token is not None:
        cmd += ["--token", token]
    return Client("stock", name, client_id, home, net.spawn(name, cmd, cwd=home, env=env))
