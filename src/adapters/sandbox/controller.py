"""A FEDn-0.33-compatible controller on loopback, standard library only.

It answers the three client endpoints with FEDn's exact paths, status codes and JSON
keys (docs/PROTOCOL.md §1), so the real HTTP adapter can be tested against it and
``fedclient sandbox`` can run a federation without a FEDn install. It also records
what it was sent, so tests assert on its state rather than on mocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

from .tokens import REFRESH_PATH, SandboxTokens

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
_MAX_BODY = 1024 * 1024
_SLASHES = re.compile(r"/{2,}")
_LEGACY = ("/add_client", "/download_package", "/get_package_checksum")
_NOT_FOUND_HTML = b"<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"


class RecordedRequest(NamedTuple):
    """One request as the controller saw it; ``headers`` never holds Authorization."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class _Package:
    path: Path
    filename: str
    sha256: str


def _header_value(value: str) -> str:
    """Quote a header parameter only when it needs it, as werkzeug does for file names."""
    if not re.search(r'[\s;,"\\]', value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


class SandboxController:
    """Assigns every client to one combiner and serves one active compute package."""

    def __init__(
        self,
        combiner_host: str,
        combiner_port: int,
        package: Path | None = None,
        token: str | None = None,
        helper_type: str = "numpyhelper",
        combiner_name: str = "combiner",
        url_prefix: str = "",
        auth_scheme: str = "Bearer",
        tokens: SandboxTokens | None = None,
    ) -> None:
        self.combiner_host = combiner_host
        self.combiner_port = combiner_port
        self.combiner_name = combiner_name
        self.helper_type = helper_type
        self.url_prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
        self._token = token
        self._auth_scheme = auth_scheme
        self.tokens = tokens  # expiring tokens, and the refresh endpoint at REFRESH_PATH
        self._lock = threading.Lock()
        self._package: _Package | None = None
        self.clients: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        # Raw Authorization header of each request (None if absent), parallel to ``requests``.
        self.authorizations: list[str | None] = []
        # Test switches: answer every API request with this status; refuse clients with 400.
        self.force_status: int | None = None
        self.combiner_available = True
        # Misbehaviour for tests: route -> replies (status, body, content type) served, one per
        # request, before the normal answer; e.g. an HTML proxy page with HTTP 200.
        self.scripted: dict[str, list[tuple[int, bytes, str]]] = {}
        self._connections: set[socket.socket] = set()
        self._tls: ssl.SSLContext | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if package is not None:
            self.set_package(package)

    # ------------------------------------------------------------ control --

    def set_package(self, path: Path | None, filename: str | None = None) -> None:
        """Make ``path`` the active package (``None`` removes it); ``filename`` overrides
        the name advertised in Content-Disposition (FEDn uses ``<uuid>.<ext>``)."""
        if path is None:
            with self._lock:
                self._package = None
            return
        pkg = _Package(path=path, filename=filename or path.name, sha256=_sha256(path))
        with self._lock:
            self._package = pkg

    @property
    def package_sha256(self) -> str | None:
        pkg = self._package
        return pkg.sha256 if pkg else None

    def start(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> int:
        """Bind and serve in a background thread; return the bound port.

        With ``tls`` (a server-side context) it serves HTTPS, for testing verification.
        """
        if self._server is not None:
            raise RuntimeError("the sandbox controller is already running")
        self._tls = tls
        server = _QuietServer((host, port), _handler_for(self))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="sandbox-controller",
        )
        self._thread.start()
        bound = int(server.server_address[1])
        scheme = "https" if tls else "http"
        log.info("sandbox controller listening on %s://%s:%d%s", scheme, host, bound, self.url_prefix)
        return bound

    def stop(self) -> None:
        """Stop serving and release the port (returns within one poll interval)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Keep-alive connections would otherwise go on being served by their threads.
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int | None:
        return int(self._server.server_address[1]) if self._server else None

    @property
    def api_url(self) -> str | None:
        """What a client passes as ``--api-url`` (the prefix goes separately)."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"{'https' if self._tls else 'http'}://{host}:{port}"

    def _track(self, conn: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def __enter__(self) -> SandboxController:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------- routes --

    def _next_scripted(self, route: str) -> tuple[int, bytes, str] | None:
        with self._lock:
            replies = self.scripted.get(route)
            return replies.pop(0) if replies else None

    def _record(self, method: str, path: str, headers: dict[str, str], auth: str | None) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers))
            self.authorizations.append(auth)

    def _route(self, path: str) -> str | None:
        """The API route a request path names, accepting FEDn's double slashes and our prefix."""
        # Not urlsplit: it would read "//api/v1/..." as a host named "api".
        path = _SLASHES.sub("/", path.split("?", 1)[0].split("#", 1)[0]) or "/"
        if self.url_prefix and path.startswith(self.url_prefix + "/"):
            path = path[len(self.url_prefix) :]
        return path

    def _auth_error(self, auth: str | None) -> str | None:
        """FEDn's 401 messages (api/auth.py); a plain comparison stands in for the JWT check."""
        if self._token is None and self.tokens is None:
            return None
        if not auth:
            return "Missing token"
        scheme, _, value = auth.partition(" ")
        if scheme != self._auth_scheme:
            return f"Invalid token scheme, expected {self._auth_scheme}"
        if self.tokens is not None:
            return self.tokens.check(value.strip(), "controller")
        if value.strip() != self._token:
            return "Invalid token"
        return None

    def _refresh(self, body: bytes) -> tuple[int, Any]:
        """The identity service's side of FEDn's refresh: ``{"refresh": ...}`` in, ``{"access": ...}`` out."""
        assert self.tokens is not None
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return 400, {"message": "Invalid JSON body."}
        token = self.tokens.refresh(data.get("refresh") if isinstance(data, dict) else None)
        if token is None:
            return 401, {"message": "Invalid refresh token"}
        return 200, {"access": token}

    def _add_client(self, body: bytes, remote_ip: str) -> tuple[int, Any]:
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return 400, {"success": False, "message": "Invalid JSON body."}
        if not isinstance(data, dict):
            return 400, {"success": False, "message": "Expected a JSON object."}
        name, client_id = data.get("name"), data.get("client_id")
        if not isinstance(name, str) or not name or not isinstance(client_id, str) or not client_id:
            return 400, {"success": False, "message": "Missing or invalid 'name' or 'client_id'."}
        package = data.get("package", "local")
        if package not in ("remote", "local"):
            return 400, {"success": False, "message": "'package' must be 'remote' or 'local'."}
        if package == "remote" and self._package is None:
            msg = "No compute package found. Set package in controller."
            return 203, {"success": False, "status": "retry", "message": msg}
        preferred = data.get("combiner_preferred")
        if preferred and preferred != self.combiner_name:
            # FEDn 0.33 bug reproduced on purpose: jsonify(dict, 400) is HTTP 200 with a list.
            return 200, [{"success": False, "message": f"Preferred combiner {preferred} not found."}, 400]
        if not self.combiner_available:
            return 400, {"success": False, "message": "No combiner available."}
        with self._lock:
            self.clients[client_id] = dict(data, ip=remote_ip)
        return 200, {
            "status": "assigned",
            "host": self.combiner_host,
            "fqdn": None,
            "package": package,
            "ip": self.combiner_host,
            "port": self.combiner_port,
            "helper_type": self.helper_type if package == "remote" else "",
            "client_id": client_id,
        }

    def _checksum(self, name: str | None = None) -> tuple[int, Any]:
        pkg = self._package
        if pkg is None:
            return 404, {"message": "No compute package uploaded", "checksum": None}
        if name is not None and name != pkg.filename:
            return 404, {"message": f"No package named {name}", "checksum": None}
        return 200, {"message": "Checksum created.", "checksum": pkg.sha256}


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up or reject our certificate are expected here, not tracebacks."""

    daemon_threads = True
    # socketserver's default listen backlog is 5: a thousand simulated clients joining at
    # once overflowed it and timed out connecting (bench/scale.py).
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sandbox controller: connection from %s failed", client_address, exc_info=True)


def _handler_for(controller: SandboxController) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = controller

    return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: SandboxController
    protocol_version = "HTTP/1.1"
    server_version = "fedclient-sandbox-controller"
    timeout = 10  # idle keep-alive connections must not pin a thread forever

    def setup(self) -> None:
        if self.owner._tls is not None:
            # Handshake here, in the connection's thread, not in the accept loop.
            self.request = self.owner._tls.wrap_socket(self.request, server_side=True)
        super().setup()
        self.owner._track(self.connection, True)

    def finish(self) -> None:
        self.owner._track(self.connection, False)
        super().finish()
        if isinstance(self.request, ssl.SSLSocket):
            # The server closes the socket it accepted, which wrap_socket detached.
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox controller: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        ctl = self.owner
        auth = self.headers.get("Authorization")
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        ctl._record(method, self.path, headers, auth)
        body = self._read_body()
        if body is None:
            return
        route = ctl._route(self.path)
        if route == "/health":
            self._json(200, {"status": "ok"})
            return
        if route == REFRESH_PATH and ctl.tokens is not None and method == "POST":
            self._json(*ctl._refresh(body))
            return
        if route in _LEGACY:
            self._json(410, {"message": "This endpoint is deprecated. Use /api/v1/ instead."})
            return
        routes = {
            "/api/v1/clients/add": "POST",
            "/api/v1/packages/download": "GET",
            "/api/v1/packages/checksum": "GET",
        }
        if route not in routes:
            self._send(404, _NOT_FOUND_HTML, "text/html; charset=utf-8")
            return
        if routes[route] != method:
            self._json(405, {"message": "Method not allowed"})
            return
        scripted = ctl._next_scripted(route)
        if scripted is not None:
            self._send(*scripted)
            return
        if ctl.force_status is not None:
            self._json(ctl.force_status, {"success": False, "message": f"forced {ctl.force_status}"})
            return
        problem = ctl._auth_error(auth)
        if problem is not None:
            self._json(401, {"message": problem})
            return
        if route == "/api/v1/clients/add":
            self._json(*ctl._add_client(body, self.client_address[0]))
        elif route == "/api/v1/packages/checksum":
            self._json(*ctl._checksum(_query_name(self.path)))
        else:
            self._send_package(_query_name(self.path))

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # the unread body would be read as the next request
            self._json(411, {"message": "Content-Length required"})
            return None
        size = int(length) if length and length.isdigit() else 0
        if size > _MAX_BODY:
            self.close_connection = True
            self._json(413, {"message": "Request body too large"})
            return None
        return self.rfile.read(size) if size else b""

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_package(self, name: str | None) -> None:
        """The active package, or (``?name=``, as FEDn) the package stored under that file name."""
        pkg = self.owner._package
        if pkg is None:
            self._json(404, {"message": "No active package"})
            return
        if name is not None and name != pkg.filename:
            self._json(404, {"message": f"No package named {name}"})
            return
        etag = f'"{pkg.sha256[:32]}"'  # FEDn's server (werkzeug) sends an ETag and honours If-None-Match
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with pkg.path.open("rb") as f:
            size = pkg.path.stat().st_size
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Disposition", f"attachment; filename={_header_value(pkg.filename)}")
            self.end_headers()
            for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
                self.wfile.write(chunk)


def _query_name(path: str) -> str | None:
    """The ``name`` query parameter of a request path, if any."""
    query = path.split("?", 1)[1].split("#", 1)[0] if "?" in path else ""
    names = urllib.parse.parse_qs(query).get("name")
    return names[0] if names else None
