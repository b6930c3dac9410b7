"""Auth on, as real FEDn deployments run it: JWT (HS256) on the controller and the combiner,
and the combiner serving gRPC over TLS on 127.0.0.1:443 with a certificate from a CA made
for the test (``tls.py``). The controller hands clients ``host: 127.0.0.1, port: 443``.

* fedclient trusts the CA through ``FEDN_GRPC_ROOT_CERT_PATH`` and still sends its token
  (FEDn's own client drops the token when that variable is set, docs/PROTOCOL.md §3.3).
* The stock 0.33 client joins the same network when gRPC's default trust store is the
  test CA (``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``): on port 443 it opens TLS with the
  system roots and attaches its token.
* Refusals (wrong secret, no token, admin role, untrusted CA) end ``fedclient run`` with
  exit code 2 and one ``fedclient: error:`` line, after a bounded number of attempts.
* Without TLS, fedclient still sends the token to the combiner on a plaintext channel,
  which the stock client never does (docs/PROTOCOL.md §3.3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.interop.checks import check_aggregated, check_clean_exit, check_rounds
from tests.interop.clients import Client, start_fedclient, start_stock_client
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fednnet import TLS_PORT, FednNetwork

pytestmark = pytest.mark.interop

AUTH_TLS = pytest.mark.parametrize(
    "fedn_network", [{"auth": True, "tls": True}], indirect=True, ids=["jwt+tls"]
)
OTHER_SECRET = "not-the-server-secret-0123456789abcdef-0123"
REFUSAL_SECONDS = 30.0  # fedclient's connect timeout is 10 s; REST refusals take under 1 s


def _root_cert_env(net: FednNetwork) -> dict[str, str]:
    return {"FEDN_GRPC_ROOT_CERT_PATH": str(net.ca_cert)}


def _combiner_log(net: FednNetwork) -> str:
    return (net.workdir / "combiner.log").read_text(errors="replace")


@AUTH_TLS
def test_fedclient_joins_over_tls_with_a_token(fedn_network: FednNetwork, digits_package: Package) -> None:
    setup_package(fedn_network, digits_package)  # as admin
    token = fedn_network.make_token("client")
    client = start_fedclient(fedn_network, "fedclient-tls", token=token, env=_root_cert_env(fedn_network))

    result = run_session(fedn_network, clients=1, rounds=2)

    check_rounds(result, rounds=2, clients=[client])
    check_aggregated(fedn_network, result, [client])
    assert "Creating secure gRPCS server" in _combiner_log(fedn_network)
    log = client.log_text()
    assert f"connected to combiner 127.0.0.1:{TLS_PORT} (TLS)" in log, log[-3000:]
    assert token not in log
    check_clean_exit(fedn_network, client)


@dataclass(frozen=True)
class Refusal:
    token: str | None  # "client", "admin", "other-secret" or None
    trust_ca: bool
    reason: str  # must appear in the one error line
    rest_status: str  # the controller's answer to the add-client call


REFUSALS = {
    "wrong-secret": Refusal("other-secret", True, "Invalid token", "401"),
    "missing-token": Refusal(None, True, "Missing token", "401"),
    "admin-role": Refusal("admin", True, "Invalid token", "401"),
    "untrusted-ca": Refusal("client", False, "certificate verify failed", "200"),
}


@AUTH_TLS
@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_client_exits_with_one_line(
    fedn_network: FednNetwork, digits_package: Package, case: str
) -> None:
    refusal = REFUSALS[case]
    setup_package(fedn_network, digits_package)
    token = {
        None: None,
        "client": fedn_network.make_token("client"),
        "admin": fedn_network.make_token("admin"),
        "other-secret": fedn_network.make_token("client", secret=OTHER_SECRET),
    }[refusal.token]
    env = _root_cert_env(fedn_network) if refusal.trust_ca else {}

    started = time.monotonic()
    client = start_fedclient(fedn_network, f"fedclient-{case}", token=token, env=env)
    code = client.proc.popen.wait(timeout=REFUSAL_SECONDS + 30)
    elapsed = time.monotonic() - started

    log = client.log_text()
    assert code == 2, f"exit {code}:\n{log[-3000:]}"
    assert elapsed < REFUSAL_SECONDS, f"took {elapsed:.1f} s:\n{log[-3000:]}"
    errors = [line for line in log.splitlines() if line.startswith("fedclient: error:")]
    assert len(errors) == 1 and refusal.reason in errors[0], log[-3000:]
    if refusal.token is None:
        assert "--token" in errors[0], errors  # says how to give one
    if not refusal.trust_ca:
        assert "FEDN_GRPC_ROOT_CERT_PATH" in errors[0], errors  # says how to trust the CA
    assert "Traceback" not in log, log[-3000:]
    assert token is None or token not in log
    _assert_bounded_attempts(fedn_network, client, refusal)


def _assert_bounded_attempts(net: FednNetwork, client: Client, refusal: Refusal) -> None:
    """One add-client call, answered as expected, and not a single TaskStream on the combiner."""
    log = (net.workdir / "controller.log").read_text(errors="replace")
    calls = [line for line in log.splitlines() if "POST /api/v1/clients/add" in line]
    assert len(calls) == 1 and f'" {refusal.rest_status} ' in calls[0] + " ", calls
    assert client.client_id not in _combiner_log(net)


@AUTH_TLS
def test_stock_client_and_fedclient_share_a_tls_session(
    fedn_network: FednNetwork, digits_package: Package
) -> None:
    setup_package(fedn_network, digits_package)
    stock = start_stock_client(
        fedn_network,
        "stock-0",
        index=0,
        count=2,
        token=fedn_network.make_token("client"),
        env={"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(fedn_network.ca_cert)},
    )
    ours = start_fedclient(
        fedn_network,
        "fedclient-1",
        index=1,
        count=2,
        token=fedn_network.make_token("client"),
        env=_root_cert_env(fedn_network),
    )

    result = run_session(fedn_network, clients=2, rounds=2)

    check_rounds(result, rounds=2, clients=[stock, ours])
    check_aggregated(fedn_network, result, [stock, ours])
    assert f"Connecting (GRPC) to 127.0.0.1:{TLS_PORT}" in stock.log_text()
    check_clean_exit(fedn_network, ours)


@pytest.mark.parametrize("fedn_network", [{"auth": True}], indirect=True, ids=["jwt"])
def test_token_over_plaintext_grpc(fedn_network: FednNetwork, digits_package: Package) -> None:
    """JWT on, no TLS: the combiner's interceptor takes the token fedclient sends on plaintext."""
    setup_package(fedn_network, digits_package)
    client = start_fedclient(fedn_network, "fedclient-plain", token=fedn_network.make_token("client"))

    result = run_session(fedn_network, clients=1, rounds=1)

    check_rounds(result, rounds=1, clients=[client])
    check_aggregated(fedn_network, result, [client])
    assert "(plaintext)" in client.log_text()
    check_clean_exit(fedn_network, client)
