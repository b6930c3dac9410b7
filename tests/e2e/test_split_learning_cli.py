"""`fedclient run` serving split-learning tasks from the sandbox combiner, with telemetry on.

The package's forward/backward scripts use only the standard library, so they run
with whatever `python` the client gives them.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.model import TaskKind

from tests.child import Child
from tests.e2e.conftest import fedclient_exe

FORWARD = """
    import json, sys
    client_id, out, inference = sys.argv[1:4]
    open(out, "wb").write(f"embeddings of {client_id} (inference={inference})".encode())
    json.dump({"num_examples": 3}, open(out + "-metadata", "w"))
"""
BACKWARD = """
    import sys
    gradients, client_id = sys.argv[1:3]
    with open("backward.log", "a") as log:
        log.write(f"{client_id} {open(gradients).read()}\\n")
"""
MANIFEST = """
entry_points:
  forward:
    command: python forward.py
  backward:
    command: python backward.py
"""


@pytest.fixture
async def combiner(tmp_path: Path) -> AsyncIterator[SandboxCombiner]:
    server = SandboxCombiner(tmp_path / "models", name="sl-combiner")
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


def sl_package(root: Path) -> Path:
    root.mkdir()
    (root / "fedn.yaml").write_text(MANIFEST)
    (root / "forward.py").write_text(textwrap.dedent(FORWARD))
    (root / "backward.py").write_text(textwrap.dedent(BACKWARD))
    return root


async def test_forward_backward_and_an_unknown_task_type(tmp_path: Path, combiner: SandboxCombiner) -> None:
    package = sl_package(tmp_path / "client")
    host, port = combiner.address
    proc = await Child.start(
        fedclient_exe(),
        "run",
        "--combiner", host,
        "--combiner-port", str(port),
        "--local-package", str(package),
        "--client-id", "sl-1",
        "--name", "sl-client",
        "--work-dir", str(tmp_path / "work"),
        "--telemetry-interval", "1",
        cwd=tmp_path,
        env=dict(os.environ),
    )  # fmt: skip
    try:
        await combiner.wait_for_clients(1, timeout=60)
        config = json.dumps({"round_id": "1", "is_sl_inference": "False", "task": "forward"})
        forward = combiner.submit_task("sl-1", TaskKind.FORWARD, "sl-model", "sl-session", config)
        [update] = await combiner.wait_for_updates([forward], timeout=60)
        assert update.model_id == "sl-model" and update.sender_client_id == "sl-1"
        assert update.meta["training_metadata"] == {"num_examples": 3} and update.meta["config"] == config
        embeddings = combiner.model_path(update.model_update_id).read_bytes()
        assert embeddings == b"embeddings of sl-1 (inference=False)"

        gradients = tmp_path / "gradients"
        gradients.write_text("grad-bytes")
        combiner.put_model("grad-1", gradients)
        backward = combiner.submit_task("sl-1", TaskKind.BACKWARD, "grad-1", "sl-session", config)
        [done] = await combiner.wait_for_backward_completions([backward], timeout=60)
        assert (done.gradient_id, done.sender_client_id, done.meta["status"]) == ("grad-1", "sl-1", "success")
        assert (package / "backward.log").read_text() == "sl-1 grad-bytes\n"

        unknown = combiner.submit_task("sl-1", TaskKind.TRAIN, "m", "sl-session", wire_type=6)  # NETWORK
        assert await combiner.wait_until(
            lambda: any(s.correlation_id == unknown and s.level == "ERROR" for s in combiner.statuses), 30
        )
        [error] = [s for s in combiner.statuses if s.correlation_id == unknown and s.level == "ERROR"]
        assert "cannot run NETWORK requests" in error.text
        assert await combiner.wait_until(lambda: len(combiner.telemetry) >= 2, 30)
    finally:
        code = await proc.stop(signal.SIGTERM, 30)
    assert code == 0, proc.tail()
    assert "Traceback" not in proc.stderr

    statuses = [(s.text, s.type) for s in combiner.statuses if s.correlation_id == forward]
    assert statuses[-1] == ("Forward pass completed.", "MODEL_UPDATE")
    telemetry = [t for t in combiner.telemetry if t.sender_client_id == "sl-1"]
    # cpu_usage is left out of a message when no CPU time passed since the previous reading
    assert all("memory_usage" in t.values and t.has_timestamp for t in telemetry)
    assert all(set(t.values) <= {"cpu_usage", "memory_usage"} for t in telemetry)
    assert any("cpu_usage" in t.values for t in telemetry)
    assert all(0 < t.values["memory_usage"] < 100 for t in telemetry)
    assert all(0 <= t.values.get("cpu_usage", 0) <= 100 for t in telemetry)
    beats = [h for h in combiner.heartbeat_records if h.sender_client_id == "sl-1"]
    assert beats and all(0 < h.memory_utilisation < 100 for h in beats)
    print("telemetry seen by the sandbox:", [t.values for t in telemetry])
    print("heartbeat usage:", [(h.cpu_utilisation, h.memory_utilisation) for h in beats[:5]])
