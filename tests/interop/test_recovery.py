"""Recovery against a real FEDn 0.33.0 network: the servers crash, start late, or let a token expire.

* the controller is not up yet when ``fedclient run`` starts: the client waits, joins once
  it is, and a session completes with its update aggregated;
* a real HS256 JWT expires mid-session: the combiner refuses the next heartbeat
  (UNAUTHENTICATED "Invalid token" - FEDn 0.33 says that for an expired token too), the
  client refreshes it once at a refresh endpoint (served here: the 0.33 controller has
  none) and goes on over the same task stream; a session then completes;
* the combiner is SIGKILLed mid-round while the client trains, and restarted: the client
  reconnects and the restarted combiner receives the round's update exactly once. (FEDn's
  controller keeps that round Pending for good - its session loop waits for the dead
  combiner's round - so no further session is run on that network.)

Recovery times are printed (``pytest -s``) for docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.interop.checks import check_aggregated, check_clean_exit, check_rounds
from tests.interop.clients import Client, start_fedclient
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fednnet import FednNetwork, NetworkError
from tests.interop.procs import HOST

pytestmark = pytest.mark.interop
REFRESH_TOKEN = "interop-refresh-token-0123456789abcdef"


def wait_for(condition: Callable[[], bool], timeout: float, what: str, client: Client) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not within {timeout:.0f} s:\n{client.log_text()[-3000:]}")
        time.sleep(0.1)
    return time.monotonic() - started


def test_controller_not_up_yet_when_the_client_starts(
    fedn_network: FednNetwork, digits_package: Package
) -> None:
    setup_package(fedn_network, digits_package)
    fedn_network.kill("controller")
    client = start_fedclient(fedn_network, "fedclient-early")
    wait_for(lambda: "controller unreachable" in client.log_text(), 30, "a retry", client)
    time.sleep(3)
    assert client.proc.popen.poll() is None, "still waiting, not given up"

    fedn_network.start_controller()
    joined = wait_for(lambda: "connected to combiner" in client.log_text(), 90, "joining", client)
    print(f"\n[recovery] controller up -> client connected to the combiner in {joined:.1f} s")

    result = run_session(fedn_network, clients=1, rounds=1)
    check_rounds(result, rounds=1, clients=[client])
    check_aggregated(fedn_network, result, [client])
    assert re.search(r"controller answered after \d+ tries", client.log_text())
    check_clean_exit(fedn_network, client)


class RefreshServer:
    """FEDn's refresh endpoint as the identity service serves it: {"refresh": ...} -> {"access": ...}."""

    def __init__(self, mint: Callable[[], str]) -> None:
        self.calls: list[dict[str, Any]] = []
        self.issued: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = json.loads(body or b"{}")
                owner.calls.append({"body": data, "authorization": self.headers.get("Authorization")})
                if data.get("refresh") == REFRESH_TOKEN:
                    token = mint()
                    owner.issued.append(token)
                    status, reply = 200, {"access": token, "refresh": REFRESH_TOKEN}
                else:
                    status, reply = 401, {"detail": "Token is invalid or expired"}
                raw = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/api/v1/token/refresh/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def refresh_server(fedn_network: FednNetwork) -> Iterator[RefreshServer]:
    server = RefreshServer(lambda: fedn_network.make_token("client", ttl=3600))
    try:
        yield server
    finally:
        server.stop()


TOKEN_TTL = 8  # seconds: enough to join, then it expires mid-session


@pytest.mark.parametrize("fedn_network", [{"auth": True}], indirect=True, ids=["jwt"])
def test_a_real_jwt_expiring_mid_session_is_refreshed(
    fedn_network: FednNetwork, digits_package: Package, refresh_server: RefreshServer
) -> None:
    setup_package(fedn_network, digits_package)
    first = fedn_network.make_token("client", ttl=TOKEN_TTL)
    expires = time.monotonic() + TOKEN_TTL
    client = start_fedclient(
        fedn_network,
        "fedclient-jwt",
        token=first,
        env={"FEDN_AUTH_REFRESH_TOKEN": REFRESH_TOKEN, "FEDN_AUTH_REFRESH_TOKEN_URI": refresh_server.uri},
    )
    wait_for(lambda: "connected to combiner" in client.log_text(), 60, "joining", client)
    wait_for(lambda: bool(refresh_server.issued), TOKEN_TTL + 30, "a token refresh", client)
    print(f"\n[recovery] token expired -> refreshed in {time.monotonic() - expires:.1f} s")

    result = run_session(fedn_network, clients=1, rounds=2)
    check_rounds(result, rounds=2, clients=[client])
    check_aggregated(fedn_network, result, [client])
    log = client.log_text()
    assert len(refresh_server.calls) == 1, refresh_server.calls
    [call] = refresh_server.calls
    assert call == {"body": {"refresh": REFRESH_TOKEN}, "authorization": None}
    assert log.count("connected to combiner") == 1, "the task stream stayed open: no reconnect"
    assert "token refreshed" in log
    for secret in (first, REFRESH_TOKEN, *refresh_server.issued):
        assert secret not in log
    check_clean_exit(fedn_network, client)


def test_combiner_sigkilled_mid_round_and_restarted(
    fedn_network: FednNetwork, digits_package: Package
) -> None:
    setup_package(fedn_network, digits_package)
    client = start_fedclient(fedn_network, "fedclient-crash")
    outcome: dict[str, Any] = {}

    def session() -> None:  # FEDn's controller never finishes this round: bounded and expected to fail
        request = {"action": "session", "clients": 1, "rounds": 1, "round_timeout": 20}
        try:
            outcome["result"] = fedn_network.drive({**request, "client_timeout": 60, "timeout": 30}, 90)
        except NetworkError as exc:
            outcome["error"] = str(exc)

    driver = threading.Thread(target=session, daemon=True)
    driver.start()
    # Killed once the train entry point runs, so the model is on disk: a combiner restarted
    # before the download finished no longer holds the round's model (it lives in its temp storage).
    wait_for(lambda: "running train:" in client.log_text(), 90, "a training run", client)
    fedn_network.kill("combiner")  # mid-round: the client is training
    killed = time.monotonic()
    time.sleep(1)
    fedn_network.start_combiner()
    restarted = time.monotonic()
    wait_for(lambda: " back after " in client.log_text(), 60, "the reconnect", client)
    back = time.monotonic()

    def received() -> list[dict[str, Any]]:
        return [
            e
            for e in fedn_network.received_updates()
            if e["event"] == "received" and e["sender_client_id"] == client.client_id
        ]

    wait_for(lambda: bool(received()), 60, "the update at the restarted combiner", client)
    print(
        f"\n[recovery] combiner SIGKILLed mid-round; restarted after {restarted - killed:.1f} s; "
        f"client reconnected {back - restarted:.1f} s later"
    )
    time.sleep(3)  # a duplicate would arrive now
    [update] = received()
    assert update["round_id"] == "1" and update["num_examples"] > 0
    assert len(re.findall(r"model update \S+ for round 1 sent", client.log_text())) == 1
    driver.join(120)
    check_clean_exit(fedn_network, client)
