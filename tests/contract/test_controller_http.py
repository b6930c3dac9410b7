"""The real HTTP adapters against the real sandbox controller on loopback."""

from __future__ import annotations

import functools
import hashlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fedclient.adapters.controller_http import ControllerEndpoint, HttpxDiscovery, HttpxPackageSource
from fedclient.adapters.sandbox.controller import SandboxController
from fedclient.domain.errors import AuthError, ConfigError, PackageError, TransientError
from fedclient.domain.model import AssignmentRequest, AssignmentStatus, Identity, PackageMode

TOKEN = "contract-token-1234567890"
REMOTE = AssignmentRequest(Identity("alice", "cid-alice"), PackageMode.REMOTE, preferred_combiner=None)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "mnist.tgz"
    path.parent.mkdir()
    # Several chunks' worth, not a multiple of the chunk size, all byte values present.
    path.write_bytes(bytes(range(256)) * 4099)
    return path


@pytest.fixture
def controller(package: Path) -> Iterator[SandboxController]:
    ctl = SandboxController("127.0.0.1", 12080, package=package, token=TOKEN)
    ctl.start("127.0.0.1", 0)
    yield ctl
    ctl.stop()


def _endpoint(ctl: SandboxController, prefix: str = "") -> ControllerEndpoint:
    return ControllerEndpoint.build("127.0.0.1", api_port=ctl.port, prefix=prefix)


@pytest.fixture
async def discovery(controller: SandboxController) -> AsyncIterator[HttpxDiscovery]:
    async with HttpxDiscovery(_endpoint(controller), TOKEN, timeout=5.0) as d:
        yield d


@pytest.fixture
async def packages(controller: SandboxController) -> AsyncIterator[HttpxPackageSource]:
    async with HttpxPackageSource(_endpoint(controller), TOKEN, timeout=5.0) as p:
        yield p


async def test_assigned(discovery: HttpxDiscovery, controller: SandboxController) -> None:
    request = AssignmentRequest(
        Identity("alice", "cid-alice"), PackageMode.REMOTE, preferred_combiner="combiner"
    )
    result = await discovery.assign(request)
    assert result.status is AssignmentStatus.ASSIGNED
    assert result.combiner is not None and result.combiner.target == "127.0.0.1:12080"
    assert result.client_id == "cid-alice"
    assert result.helper_type == "numpyhelper"
    sent = controller.clients["cid-alice"]
    assert sent["name"] == "alice" and sent["package"] == "remote"
    assert sent["preferred_combiner"] == sent["combiner_preferred"] == "combiner"
    assert controller.authorizations == [f"Bearer {TOKEN}"]
    method, path, headers = controller.requests[0]
    assert (method, path) == ("POST", "/api/v1/clients/add")
    assert "authorization" not in headers and TOKEN not in str(headers)


async def test_local_package_gets_empty_helper(discovery: HttpxDiscovery) -> None:
    result = await discovery.assign(AssignmentRequest(Identity("bob", "cid-bob"), PackageMode.LOCAL))
    assert result.status is AssignmentStatus.ASSIGNED and result.helper_type == ""


async def test_try_again_until_a_package_is_set(
    discovery: HttpxDiscovery, controller: SandboxController, package: Path
) -> None:
    controller.set_package(None)
    first = await discovery.assign(REMOTE)
    assert first.status is AssignmentStatus.TRY_AGAIN
    assert "No compute package found" in first.message
    controller.set_package(package)
    assert (await discovery.assign(REMOTE)).status is AssignmentStatus.ASSIGNED


@pytest.mark.parametrize(("token", "message"), [("wrong-token", "Invalid token"), (None, "Missing token")])
async def test_unauthorized(controller: SandboxController, token: str | None, message: str) -> None:
    async with HttpxDiscovery(_endpoint(controller), token) as d:
        result = await d.assign(REMOTE)
    assert result.status is AssignmentStatus.UNAUTHORIZED
    assert message in result.message
    assert TOKEN not in result.message and (token is None or token not in result.message)
    assert controller.clients == {}


async def test_preferred_combiner_not_found_is_a_refusal(discovery: HttpxDiscovery) -> None:
    request = AssignmentRequest(Identity("a", "cid-a"), PackageMode.REMOTE, preferred_combiner="elsewhere")
    result = await discovery.assign(request)
    assert result.status is AssignmentStatus.UNMATCHED_CONFIG
    assert "Preferred combiner elsewhere not found" in result.message


async def test_no_combiner_available_means_wait(
    discovery: HttpxDiscovery, controller: SandboxController
) -> None:
    controller.combiner_available = False
    result = await discovery.assign(REMOTE)
    assert result.status is AssignmentStatus.TRY_AGAIN
    assert "No combiner available." in result.message


async def test_wrong_base_path_is_404(controller: SandboxController) -> None:
    async with HttpxDiscovery(_endpoint(controller, prefix="/not-here"), TOKEN) as d:
        result = await d.assign(REMOTE)
    assert result.status is AssignmentStatus.UNMATCHED_CONFIG
    assert result.message.startswith("no FEDn controller API at http://127.0.0.1:")
    async with HttpxPackageSource(_endpoint(controller, prefix="/not-here"), TOKEN) as p:
        with pytest.raises(PackageError):
            await p.download(Path("unused"))


async def test_prefix_is_used_for_every_path(package: Path, tmp_path: Path) -> None:
    with SandboxController("127.0.0.1", 12080, package=package, url_prefix="/internal") as ctl:
        ctl.start()
        endpoint = _endpoint(ctl, prefix="internal")
        async with HttpxDiscovery(endpoint, None) as d, HttpxPackageSource(endpoint, None) as p:
            assert (await d.assign(REMOTE)).status is AssignmentStatus.ASSIGNED
            await p.download(tmp_path / "dl")
            assert await p.checksum() is not None
        assert [path for _, path, _ in ctl.requests] == [
            "/internal/api/v1/clients/add",
            "/internal/api/v1/packages/download",
            "/internal/api/v1/packages/checksum",
        ]


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unreachable(
    discovery: HttpxDiscovery, controller: SandboxController, status: int
) -> None:
    controller.force_status = status
    result = await discovery.assign(REMOTE)
    assert result.status is AssignmentStatus.UNREACHABLE
    assert f"HTTP {status}" in result.message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connection_refused(tmp_path: Path) -> None:
    endpoint = ControllerEndpoint.build("127.0.0.1", api_port=_closed_port())
    async with HttpxDiscovery(endpoint, TOKEN, timeout=2.0) as d:
        result = await d.assign(REMOTE)
    assert result.status is AssignmentStatus.UNREACHABLE
    assert "cannot reach the controller" in result.message
    async with HttpxPackageSource(endpoint, TOKEN, timeout=2.0) as p:
        with pytest.raises(TransientError):
            await p.download(tmp_path)
        with pytest.raises(TransientError):
            await p.checksum()


async def test_download_streams_the_package(
    packages: HttpxPackageSource, controller: SandboxController, package: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "pkg"
    path = await packages.download(dest)
    assert path == dest / "mnist.tgz"
    assert path.read_bytes() == package.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["mnist.tgz"]  # no .part left behind
    assert controller.authorizations[-1] == f"Bearer {TOKEN}"


async def test_checksum_matches_the_file(packages: HttpxPackageSource, package: Path) -> None:
    assert await packages.checksum() == hashlib.sha256(package.read_bytes()).hexdigest()


async def test_a_package_asked_for_by_name(
    controller: SandboxController, package: Path, tmp_path: Path
) -> None:
    """FEDn's ``?name=`` on both routes: the stored file of that name, else 404."""
    async with HttpxPackageSource(_endpoint(controller), TOKEN, timeout=5.0, name="mnist.tgz") as named:
        path = await named.download(tmp_path / "named")
        assert path.read_bytes() == package.read_bytes()
        assert await named.checksum() == hashlib.sha256(package.read_bytes()).hexdigest()
    async with HttpxPackageSource(_endpoint(controller), TOKEN, timeout=5.0, name="other.tgz") as other:
        with pytest.raises(PackageError):
            await other.download(tmp_path / "other")
        assert await other.checksum() is None
    paths = [r.path for r in controller.requests if "/packages/" in r.path]
    assert paths == [
        "/api/v1/packages/download?name=mnist.tgz",
        "/api/v1/packages/checksum?name=mnist.tgz",
        "/api/v1/packages/download?name=other.tgz",
        "/api/v1/packages/checksum?name=other.tgz",
    ], paths
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())


async def test_no_package(
    packages: HttpxPackageSource, controller: SandboxController, tmp_path: Path
) -> None:
    controller.set_package(None)
    with pytest.raises(PackageError, match="the controller has no active compute package"):
        await packages.download(tmp_path)
    assert await packages.checksum() is None


async def test_package_auth_errors(controller: SandboxController, tmp_path: Path) -> None:
    async with HttpxPackageSource(_endpoint(controller), "nope") as p:
        with pytest.raises(AuthError, match="Invalid token") as err:
            await p.download(tmp_path)
        assert "nope" not in str(err.value).replace("no token", "")
        with pytest.raises(AuthError):
            await p.checksum()


async def test_package_server_error_is_transient(
    packages: HttpxPackageSource, controller: SandboxController, tmp_path: Path
) -> None:
    controller.force_status = 503
    with pytest.raises(TransientError):
        await packages.download(tmp_path)


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "/etc/passwd", "..\\..\\evil.tgz", "../a b;c.tgz"])
async def test_hostile_filename_stays_inside_dest(
    packages: HttpxPackageSource, controller: SandboxController, package: Path, tmp_path: Path, hostile: str
) -> None:
    controller.set_package(package, filename=hostile)
    dest = tmp_path / "a" / "b" / "dest"
    path = await packages.download(dest)
    assert path.parent == dest
    assert path.name in ("passwd", "evil.tgz", "a b;c.tgz")
    assert path.read_bytes() == package.read_bytes()


async def test_sandbox_accepts_double_slash_legacy_and_bad_bodies(controller: SandboxController) -> None:
    base = f"http://127.0.0.1:{controller.port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base, headers=auth) as client:
        # A full URL: httpx would read a bare "//api/..." as a host named "api".
        assert (await client.get(f"{base}//api/v1/packages/checksum")).status_code == 200
        assert (await client.get(f"{base}/api//v1/packages//checksum")).status_code == 200
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.post("/add_client", json={})).status_code == 410
        bad = await client.post("/api/v1/clients/add", content=b"{not json")
        assert bad.status_code == 400 and "message" in bad.json()
        missing = await client.post("/api/v1/clients/add", json={"name": "x"})
        assert missing.status_code == 400
        assert (await client.get("/api/v1/clients/add")).status_code == 405
        scheme = await client.get("/api/v1/packages/checksum", headers={"Authorization": f"Token {TOKEN}"})
        assert (
            scheme.status_code == 401 and scheme.json()["message"] == "Invalid token scheme, expected Bearer"
        )


async def test_stop_closes_kept_alive_connections(package: Path) -> None:
    ctl = SandboxController("127.0.0.1", 12080, package=package)
    ctl.start()
    async with HttpxPackageSource(_endpoint(ctl), None, timeout=2.0) as p:
        assert await p.checksum() is not None  # leaves a pooled keep-alive connection
        ctl.stop()
        with pytest.raises(TransientError):
            await p.checksum()
    assert ctl.port is None and ctl.api_url is None


# ----------------------------------------------------------------------- TLS --


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = functools.partial(subprocess.run, check=True, capture_output=True, cwd=d)
    run(["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
         "-subj", "/CN=fedclient test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])  # fmt: skip
    run(["openssl", "req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"])
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    run(["openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.pem", "-days", "1", "-extfile", "ext.cnf"])  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(d / "srv.pem", d / "srv.key")
    return d / "ca.pem", server_ctx


@pytest.fixture
def tls_controller(package: Path, tls_files: tuple[Path, ssl.SSLContext]) -> Iterator[SandboxController]:
    ctl = SandboxController("127.0.0.1", 12080, package=package, token=TOKEN)
    ctl.start(tls=tls_files[1])
    yield ctl
    ctl.stop()


async def test_tls_is_verified_by_default(tls_controller: SandboxController, tmp_path: Path) -> None:
    endpoint = ControllerEndpoint.build(f"https://127.0.0.1:{tls_controller.port}")
    async with HttpxDiscovery(endpoint, TOKEN, timeout=5.0) as d:
        result = await d.assign(REMOTE)
    assert result.status is AssignmentStatus.UNMATCHED_CONFIG
    assert "TLS certificate verification failed" in result.message
    async with HttpxPackageSource(endpoint, TOKEN, timeout=5.0) as p:
        with pytest.raises(ConfigError, match="TLS certificate verification failed"):
            await p.checksum()


@pytest.mark.parametrize("use_ca", [True, False])
async def test_tls_with_ca_bundle_or_verification_off(
    tls_controller: SandboxController,
    tls_files: tuple[Path, ssl.SSLContext],
    package: Path,
    tmp_path: Path,
    use_ca: bool,
) -> None:
    assert tls_controller.api_url is not None and tls_controller.api_url.startswith("https://")
    endpoint = ControllerEndpoint.build(tls_controller.api_url)
    verify: bool | str = str(tls_files[0]) if use_ca else False
    discovery = HttpxDiscovery(endpoint, TOKEN, verify=verify)
    packages = HttpxPackageSource(endpoint, TOKEN, verify=verify)
    async with discovery, packages:
        assert (await discovery.assign(REMOTE)).status is AssignmentStatus.ASSIGNED
        assert (await packages.download(tmp_path)).read_bytes() == package.read_bytes()
