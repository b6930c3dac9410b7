"""Did a failed call leave this machine? Tells "provably never sent" from "maybe received".

gRPC fails a call fast with UNAVAILABLE and a connect error when the channel has
no connection: the request was never written, so sending it again cannot
duplicate it. Any other failure (a deadline, a reset or closed socket, a stream
torn down, an error from the server) can come after the server got the request.
"""

from __future__ import annotations

import grpc
import grpc.aio

_NOT_CONNECTED = (
    "failed to connect",
    "connection refused",
    "connect failed",
    "dns resolution failed",
    "name resolution",
    "no route to host",
    "network is unreachable",
)


def never_sent(err: grpc.aio.AioRpcError) -> bool:
    if err.code() is not grpc.StatusCode.UNAVAILABLE:
        return False
    details = (err.details() or "").lower()
    return any(marker in details for marker in _NOT_CONNECTED)
