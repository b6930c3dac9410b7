"""A real FEDn 0.33.0 network on 127.0.0.1: moto S3 + controller + one combiner.

``auth=True`` turns JWT on for the controller and the combiner. ``tls=True`` makes the
combiner serve gRPC over TLS on 127.0.0.1:443, as real deployments run it (the stock
client only opens TLS, and only then sends its token, on port 443), with a server
certificate signed by a CA made for this network (``tls.py``); the controller reaches
the combiner through ``FEDN_GRPC_CERT_PATH``. Port 443 is fixed, so only one TLS
network can run at a time: ``start()`` refuses to run if something already listens there.

Every process runs from the separate FEDn venv (see ``fedn_venv``) through our
``fedn_launch.py``, in a process group of its own that we created, so ``stop()``
signals exactly the groups this object started (TERM, wait, KILL) and nothing found
by name. ``stop()`` runs from ``__exit__`` and, as a last resort, from ``atexit``.

A network that does not come up raises ``NetworkError`` with the tail of every
process log: the interop tests then fail loudly, they never skip.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.interop.fedn_venv import DEFAULT_VENV, ensure_fedn_venv, venv_python
from tests.interop.jwt_hs256 import make_jwt
from tests.interop.procs import HOST, Proc, free_ports, peek_exit, port_is_free, spawn, stop_group
from tests.interop.tls import TlsFiles, make_ca_and_server_cert

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "fedn_launch.py"
DRIVER = HERE / "fedn_session.py"
COMBINER_NAME = "interop-combiner"
TLS_PORT = 443  # FEDn 0.33's client opens TLS (and sends its token) only on this port
_COMBINER_READY = "ready for gRPC requests"
_SECRET = "interop-secret-0123456789abcdef-0123456789"  # >= 32 bytes: HS256 without pyjwt warnings


class NetworkError(RuntimeError):
    """The FEDn network could not start or a driver call failed (message has log tails)."""


class FednNetwork:
    """Context manager: ``with FednNetwork(tmp) as net: net.api_port ...``."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        auth: bool = False,
        tls: bool = False,
        venv: Path = DEFAULT_VENV,
        server_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fednnet-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.auth = auth
        self.tls = tls
        self.venv = venv
        self.server_env = dict(server_env or {})  # e.g. FEDN_LABELS_PATH for the combiner
        self.s3_port, self.api_port, self.combiner_port, self.hook_port = free_ports(4)
        if tls:
            self.combiner_port = TLS_PORT
        self.tls_files: TlsFiles | None = None
        self.events = self.workdir / "combiner-events.jsonl"
        self._procs: list[Proc] = []

    # ------------------------------------------------------------ addresses --

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def ca_cert(self) -> Path:
        """The trust root of a TLS network's combiner certificate."""
        assert self.tls_files is not None, "not a TLS network (FednNetwork(tls=True)), or not started"
        return self.tls_files.ca_cert

    def make_token(self, role: str = "client", ttl: int = 3600, secret: str = _SECRET) -> str:
        """An HS256 token the server accepts for ``role`` (client, admin, combiner).

        Another ``secret`` gives a well-formed token that the server must refuse.
        """
        return make_jwt(secret, {"role": role, "exp": int(time.time()) + ttl})

    # ------------------------------------------------------------ lifecycle --

    def __enter__(self) -> FednNetwork:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> None:
        ensure_fedn_venv(self.venv)
        if self.tls and not port_is_free(self.combiner_port):
            raise NetworkError(f"{HOST}:{self.combiner_port} is taken: is another TLS FednNetwork running?")
        atexit.register(self.stop)
        try:
            if self.tls:
                self.tls_files = make_ca_and_server_cert(self.workdir / "tls")
            self._write_config()
            bin_dir = venv_python(self.venv).parent
            # All three at once: each server imports fedn first and then waits for the one it
            # needs (fedn_launch.py --after), so their imports overlap.
            self.spawn("s3", [str(bin_dir / "moto_server"), "-H", HOST, "-p", str(self.s3_port)])
            self._spawn_controller(after=self._s3_url)
            self._spawn_combiner(after=self._health_url)
            self._wait(self._s3_url, "s3", timeout)
            self._wait(self._health_url, "controller", timeout)
            self._wait_combiner(timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def _s3_url(self) -> str:
        return f"http://{HOST}:{self.s3_port}/"

    @property
    def _health_url(self) -> str:
        return f"{self.api_url}/health"

    def start_controller(self, timeout: float = 90.0) -> Proc:
        """(Re)start the controller on its port and wait until it answers /health."""
        proc = self._spawn_controller()
        self._wait(self._health_url, "controller", timeout)
        return proc

    def start_combiner(self, timeout: float = 90.0) -> Proc:
        """(Re)start the combiner on its port and wait until it is registered and serving gRPC."""
        log = self.workdir / "combiner.log"
        readies = log.read_text(errors="replace").count(_COMBINER_READY) if log.exists() else 0
        proc = self._spawn_combiner()
        self._wait_combiner(timeout, readies + 1)
        return proc

    def _spawn_controller(self, after: str | None = None) -> Proc:
        argv = [str(venv_python(self.venv)), str(LAUNCHER), "controller", "--port", str(self.api_port)]
        return self.spawn("controller", argv + (["--after", after] if after else []))

    def _spawn_combiner(self, after: str | None = None) -> Proc:
        init = self.workdir / "combiner.yaml"
        argv = [str(venv_python(self.venv)), str(LAUNCHER), "combiner", "--init", str(init)]
        return self.spawn("combiner", argv + (["--after", after] if after else []))

    def kill(self, name: str) -> None:
        """SIGKILL the process group of the server ``name`` we started (a crash: no cleanup), and reap it."""
        proc = next(p for p in self._procs if p.name == name)
        self._procs.remove(proc)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, signal.SIGKILL)  # start_new_session: the group id is its pid
        proc.popen.wait(timeout=30)
        proc.handle.close()

    def stop(self) -> None:
        """TERM each group we started (newest first), wait, then KILL what is left."""
        while self._procs:
            proc = self._procs.pop()
            stop_group(proc.popen)
            proc.handle.close()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def restart_combiner(self, timeout: float = 90.0, *, wipe_models: bool = True) -> None:
        """Stop the combiner we started and start it again: a fresh combiner state.

        ``wipe_models`` also deletes the models it kept in its scratch directory.
        Used by bench/transfer.py, which measures every upload on a fresh combiner.
        """
        combiner = next(p for p in self._procs if p.name == "combiner")
        self.finish(combiner)
        if wipe_models:
            for path in (self.workdir / "combiner-models").glob("*"):
                if path.is_file():
                    path.unlink()
        log = self.workdir / "combiner.log"
        log.write_text("")  # _wait_combiner looks for this start's "ready" line
        self._spawn_combiner()
        self._wait_combiner(timeout)

    # -------------------------------------------------------------- helpers --

    def env(self) -> dict[str, str]:
        """Environment for every server process (and the session driver)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDN_", "AWS_"))}
        for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            env.pop(key, None)
        env.update(
            STATESTORE_CONFIG=str(self.workdir / "settings.yaml"),
            MODELSTORAGE_CONFIG=str(self.workdir / "settings.yaml"),
            # A closed loopback port: without it every round does a DNS lookup of "hook".
            HOOK_SERVICE_HOST=f"{HOST}:{self.hook_port}",
            FEDN_MODEL_DIR=str(self.workdir / "combiner-models"),
            INTEROP_EVENTS=str(self.events),
            AWS_ACCESS_KEY_ID="interop",
            AWS_SECRET_ACCESS_KEY="interop-secret",  # a fake, for moto
            AWS_DEFAULT_REGION="eu-west-1",
            AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.server_env)
        if self.auth:
            env.update(FEDN_JWT_SECRET_KEY=_SECRET, FEDN_JWT_ALGORITHM="HS256")
        if self.tls_files is not None:
            # The controller's (and our session driver's) gRPC channels to the combiner trust this.
            env["FEDN_GRPC_CERT_PATH"] = str(self.tls_files.ca_cert)
        return env

    def _write_config(self) -> None:
        (self.workdir / "combiner-models").mkdir(exist_ok=True)
        storage_config = {
            "storage_endpoint": f"http://{HOST}:{self.s3_port}",  # not storage_endpoint_url
            "storage_region": "eu-west-1",
            "storage_access_key": "interop",
            "storage_secret_key": "interop-secret",
            "storage_bucket": "fedn-models",
            "context_bucket": "fedn-context",
            "prediction_bucket": "fedn-prediction",
            "storage_secure_mode": False,
            "storage_verify_ssl": False,
        }
        settings = {
            "network_id": "interop-network",
            "controller": {"host": HOST, "port": self.api_port, "debug": False},
            "statestore": {"type": "SQLite", "sqlite_config": {"dbname": str(self.workdir / "fedn.sqlite")}},
            "storage": {"storage_type": "BOTO3", "storage_config": storage_config},
        }
        combiner = {
            "name": COMBINER_NAME,
            "host": HOST,
            "port": self.combiner_port,
            "fqdn": None,
            "max_clients": 30,
            "secure": False,
            "verify": False,
        }
        if self.tls_files is not None:
            combiner.update(
                secure=True,
                cert_path=str(self.tls_files.server_cert),
                key_path=str(self.tls_files.server_key),
            )
        # JSON is valid YAML, so no yaml dependency is needed here.
        (self.workdir / "settings.yaml").write_text(json.dumps(settings, indent=2))
        (self.workdir / "combiner.yaml").write_text(json.dumps(combiner, indent=2))

    def spawn(
        self, name: str, cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> Proc:
        """Start ``cmd`` in a new process group, logging to ``<workdir>/<name>.log``.

        Clients are started through here too, so ``stop()`` ends them (first, being
        newest) and ``log_tails()`` shows their logs beside the servers'.
        """
        env = env if env is not None else self.env()
        proc = spawn(name, cmd, self.workdir / f"{name}.log", cwd or self.workdir, env)
        self._procs.append(proc)
        return proc

    def finish(self, proc: Proc, grace: float = 30.0) -> int:
        """Stop one process we spawned (TERM, wait, KILL) and return its exit code."""
        if proc in self._procs:
            self._procs.remove(proc)
            proc.handle.close()
        return stop_group(proc.popen, grace)

    def _wait(self, url: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
            time.sleep(0.2)
        raise NetworkError(f"{name} did not become healthy at {url} in {timeout:.0f} s\n{self.log_tails()}")

    def _wait_combiner(self, timeout: float, readies: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError, ValueError):
                log = (self.workdir / "combiner.log").read_text(errors="replace")
                if (
                    self.rest("/api/v1/combiners/").get("count", 0) >= 1
                    and log.count(_COMBINER_READY) >= readies
                ):
                    return
            time.sleep(0.3)
        raise NetworkError(f"the combiner did not register in {timeout:.0f} s\n{self.log_tails()}")

    def check_alive(self) -> None:
        for proc in self._procs:
            code = peek_exit(proc.popen)
            if code is not None:
                raise NetworkError(f"{proc.name} exited with code {code}\n{self.log_tails()}")

    def rest(self, path: str) -> dict[str, Any]:
        """GET a controller endpoint as admin and decode its JSON."""
        request = urllib.request.Request(self.api_url + path)
        if self.auth:
            request.add_header("Authorization", f"Bearer {self.make_token('admin')}")
        with urllib.request.urlopen(request, timeout=10) as reply:
            data: dict[str, Any] = json.loads(reply.read())
            return data

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for log in sorted(self.workdir.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {log.name} (last {len(text)} lines) -----\n" + "\n".join(text))
        return "\n".join(parts)

    def _events(self) -> list[dict[str, Any]]:
        if not self.events.exists():
            return []
        return [json.loads(line) for line in self.events.read_text().splitlines() if line.strip()]

    def received_updates(self) -> list[dict[str, Any]]:
        """The combiner's own record (fedn_launch.record_updates) of updates received/aggregated."""
        return [e for e in self._events() if e["event"] in ("received", "aggregated")]

    def split_learning_passes(self) -> list[dict[str, Any]]:
        """What the combiner's split-learning stand-in received per forward pass (fedn_launch)."""
        return [e for e in self._events() if e["event"] == "sl_forward"]

    def heartbeats(self) -> list[dict[str, Any]]:
        """Every Heartbeat the combiner received, with its utilisation fields (record_heartbeats)."""
        return [e for e in self._events() if e["event"] == "heartbeat"]

    # -------------------------------------------------------------- driving --

    def drive(self, request: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        """Run ``fedn_session.py`` (FEDn's APIClient, in the FEDn venv) and return its JSON."""
        args = {"host": HOST, "port": self.api_port, **request}
        if self.auth:
            args["token"] = self.make_token("admin")
        proc = subprocess.run(
            [str(venv_python(self.venv)), str(DRIVER)],
            input=json.dumps(args),
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise NetworkError(
                f"session driver failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n{self.log_tails()}"
            )
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result
