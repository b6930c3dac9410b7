"""JWT on: FEDn's REST decorator and gRPC interceptor accept fedclient's token, refuse a wrong one.

The stock 0.33 client only sends its gRPC token over TLS on port 443, so it cannot
join this plaintext loopback network at all (NOTES.md); fedclient attaches the token
on every channel, and this proves the real combiner's interceptor takes it.
"""

from __future__ import annotations

import pytest

from tests.interop.checks import check_aggregated, check_clean_exit, check_rounds
from tests.interop.clients import start_fedclient
from tests.interop.conftest import Package, run_session, setup_package
from tests.interop.fednnet import FednNetwork

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("fedn_network", [{"auth": True}], indirect=True)
def test_token_auth_with_a_real_fedn(fedn_network: FednNetwork, digits_package: Package) -> None:
    setup_package(fedn_network, digits_package)  # as admin

    wrong = fedn_network.make_token("admin")  # valid signature, but not the `client` role
    refused = start_fedclient(fedn_network, "fedclient-wrong-role", token=wrong)
    code = refused.proc.popen.wait(timeout=60)
    log = refused.log_text()
    assert code == 2, log[-3000:]
    errors = [line for line in log.splitlines() if line.startswith("fedclient: error:")]
    assert len(errors) == 1 and "Invalid token" in errors[0], log[-3000:]
    assert wrong not in log and "Traceback" not in log

    client = start_fedclient(fedn_network, "fedclient-0", token=fedn_network.make_token("client"))
    result = run_session(fedn_network, clients=1, rounds=1)
    check_rounds(result, rounds=1, clients=[client])
    check_aggregated(fedn_network, result, [client])
    check_clean_exit(fedn_network, client)
