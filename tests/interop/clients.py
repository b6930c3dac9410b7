"""Clients for a ``FednNetwork``: our ``fedclient run`` and FEDn's stock ``fedn client start``.

Both run as at a site: the client program from a venv of its own that lacks the
package's libraries (fedclient from ``.site-venv``, see ``site_venv``; the stock client
from the FEDn venv), and the package's environment first on PATH (by default this
project's venv, which has numpy and scikit-learn for examples/digits) or built from its
python_env. Each client gets its own home directory (the stock client unpacks into ``./package``
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
from tests.interop.site_venv import DEFAULT_SITE_VENV, site_bin

# The "site's ML environment" the packages run with unless a test says otherwise.
OUR_BIN = Path(sys.executable).parent
FEDCLIENT = site_bin(DEFAULT_SITE_VENV) / "fedclient"


@dataclass
class Client:
    kind: str  # "fedclient" or "stock"
    name: str
    client_id: str
    home: Path
    proc: Proc

    def log_text(self) -> str:
        return self.proc.log.read_text(errors="replace")


def _env(
    index: int, count: int, extra: dict[str, str] | None = None, package_bin: Path | None = OUR_BIN
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDN_", "AWS_"))}
    for key in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)  # trust roots only where a test asks for them; no venv leaks in
    env.update(FEDN_CLIENT_INDEX=str(index), FEDN_NUM_CLIENTS=str(count), PYTHONUNBUFFERED="1")
    env["PATH"] = site_path(package_bin, env.get("PATH", ""))
    env.update(extra or {})
    return env


def site_path(package_bin: Path | None, base: str) -> str:
    """PATH as at a site: the package's environment first (None: none), never our dev venv otherwise."""
    rest = [p for p in base.split(os.pathsep) if p and Path(p) != OUR_BIN]
    return os.pathsep.join([str(package_bin), *rest] if package_bin else rest)


def start_fedclient(
    net: FednNetwork,
    name: str,
    index: int = 0,
    count: int = 1,
    *,
    local_package: Path | None = None,
    token: str | None = None,
    env: dict[str, str] | None = None,
    package_bin: Path | None = OUR_BIN,
    args: tuple[str, ...] = (),
    home: Path | None = None,
    site_venv: Path = DEFAULT_SITE_VENV,
) -> Client:
    """``fedclient run`` from the site venv against ``net``.

    ``package_bin`` goes first on PATH for the package (None: nothing extra, so only a
    built python_env or the system's Python can run it); ``env`` adds variables (e.g.
    FEDN_GRPC_ROOT_CERT_PATH); ``args`` adds flags; ``home`` (the cwd) may be made first;
    ``site_venv`` is where fedclient is installed (``site_venv.PRIVACY_SITE_VENV``: with the
    privacy extra).
    """
    fedclient = site_bin(site_venv) / "fedclient"
    assert fedclient.exists(), f"no site venv at {fedclient.parent}: run `make site-venv`"
    if home is None:
        home = net.workdir / name
        home.mkdir(parents=True)
    client_id = str(uuid.uuid4())
    cmd = [str(fedclient), "run", "--api-url", net.api_url, "--name", name, "--client-id", client_id]
    cmd += ["--work-dir", str(home / "work"), "--log-level", "INFO"]
    if local_package is not None:
        cmd += ["--local-package", str(local_package)]
    if token is not None:
        cmd += ["--token", token]
    cmd += list(args)
    proc = net.spawn(name, cmd, cwd=home, env=_env(index, count, env, package_bin))
    return Client("fedclient", name, client_id, home, proc)


def start_stock_client(
    net: FednNetwork,
    name: str,
    index: int = 0,
    count: int = 1,
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    package_bin: Path | None = OUR_BIN,
    home: Path | None = None,
    with_id: bool = True,
) -> Client:
    """FEDn 0.33's own client, from the FEDn venv.

    It runs ``python train.py`` through bash with whichever ``python`` is first on
    PATH, so ``package_bin`` (default our venv's: numpy + scikit-learn) goes first; the
    client itself is the FEDn venv's ``fedn`` script and keeps its own interpreter.
    ``env`` adds variables (e.g. GRPC_DEFAULT_SSL_ROOTS_FILE_PATH for a test CA).
    ``with_id=False`` gives neither --name nor --client-id (client_id is then ""); ``home``
    reuses a directory.
    """
    if home is None:
        home = net.workdir / name
        home.mkdir(parents=True)
    client_id = str(uuid.uuid4()) if with_id else ""
    env = _env(index, count, env, package_bin)
    env["FEDN_PACKAGE_EXTRACT_DIR"] = "package"
    fedn = venv_python(net.venv).parent / "fedn"
    cmd = [str(fedn), "client", "start", "--api-url", f"http://{HOST}", "--api-port", str(net.api_port)]
    if with_id:
        cmd += ["--name", name, "--client-id", client_id]
    if token is not None:
        cmd += ["--token", token]
    return Client("stock", name, client_id, home, net.spawn(name, cmd, cwd=home, env=env))
