"""Model downloads from a misbehaving sandbox combiner, straight through the real gRPC link.

Each misbehaviour gives a clear error of the right kind (final for what retrying cannot
fix, transient for a stream that merely ended early) and leaves no file, whole or partial.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.link import GrpcCombinerLink, GrpcConnector
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.errors import FedClientError, TaskFailed, TransientError
from fedclient.domain.model import CombinerAddress, Identity


@pytest.fixture
async def link(tmp_path: Path) -> AsyncIterator[tuple[SandboxCombiner, GrpcCombinerLink]]:
    combiner = SandboxCombiner(tmp_path / "models")
    port = await combiner.start("127.0.0.1", 0)
    connector = GrpcConnector(None, connect_timeout=5, max_model_bytes=3 * 1024 * 1024)
    link = await connector.connect(CombinerAddress("127.0.0.1", port), Identity("a", "cid-a"))
    try:
        yield combiner, link
    finally:
        await link.close()
        await combiner.stop()


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        ("wrong-id", TaskFailed, "sent a chunk of model 'some-other-model'"),
        ("oversized-chunk", TaskFailed, "larger than the limit of 4194304"),
        ("endless", TaskFailed, "larger than the limit of 3145728 bytes"),
        ("no-ok", TransientError, "ended before the combiner said OK (1024 bytes received)"),
    ],
)
async def test_misbehaving_download_is_a_clear_error_and_leaves_no_file(
    tmp_path: Path,
    link: tuple[SandboxCombiner, GrpcCombinerLink],
    mode: str,
    error: type[FedClientError],
    message: str,
) -> None:
    combiner, grpc_link = link
    combiner.misbehave["m1"] = mode
    dest_dir = tmp_path / "client"
    dest_dir.mkdir()
    with pytest.raises(error) as raised:
        await grpc_link.download("m1", dest_dir / "in.npz")
    assert message in str(raised.value)
    assert list(dest_dir.iterdir()) == []  # no model, no .part file
    assert combiner.downloads == ["m1"]
