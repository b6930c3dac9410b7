"""The Python API examples of docs/PYTHON-API.md, extracted and run as scripts against the sandbox."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.federation import Federation

from tests.child import Child
from tests.e2e.conftest import ROOT

_BLOCK = re.compile(r"<!-- doc-example: (\w+) -->\n```python\n(.*?)```", re.S)


def doc_example(name: str) -> str:
    blocks = dict(_BLOCK.findall((ROOT / "docs" / "PYTHON-API.md").read_text(encoding="utf-8")))
    assert name in blocks, f"docs/PYTHON-API.md has no example marked {name!r}"
    return blocks[name]


async def _start(script: Path, federation: Federation, cwd: Path, *, sigint_ignored: bool = False) -> Child:
    assert federation.controller is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDN_")}
    env.update(
        FEDN_API_URL="127.0.0.1",
        FEDN_API_PORT=str(federation.controller.port),
        MODEL_ID=federation.seed_model_id,
    )
    return await Child.start(sys.executable, script, cwd=cwd, env=env, sigint_ignored=sigint_ignored)


# A script started as a background job of a non-interactive shell (or by some CI runners)
# inherits SIGINT ignored; Ctrl-C must stop the client all the same.
SIGINT_INHERITED = pytest.mark.parametrize(
    "sigint_ignored", [False, True], ids=["sigint-default", "sigint-ignored"]
)


async def test_the_api_example_assigns_connects_downloads_and_uploads(
    tmp_path: Path, federation: Federation
) -> None:
    script = tmp_path / "api_example.py"
    script.write_text(doc_example("api"))
    child = await _start(script, federation, tmp_path)
    assert await child.wait(120) == 0, child.tail()
    assert federation.combiner is not None
    seed = federation.combiner.model_path(federation.seed_model_id).read_bytes()
    _, new_id, size, _ = child.stdout.split()
    assert int(size) == len(seed)
    assert federation.combiner.model_path(new_id).read_bytes() == seed
    assert (tmp_path / "model.npz").read_bytes() == seed


@SIGINT_INHERITED
async def test_the_in_process_example_trains_a_round_and_stops_on_ctrl_c(
    tmp_path: Path, federation: Federation, sigint_ignored: bool
) -> None:
    script = tmp_path / "inprocess_example.py"
    script.write_text(doc_example("inprocess"))
    child = await _start(script, federation, tmp_path, sigint_ignored=sigint_ignored)
    try:
        await federation.wait_for_clients(timeout=60)
        [result] = await federation.run(1)
    finally:
        code = await child.stop(signal.SIGINT, 30)
    assert code == 0, child.tail()
    assert (result.updates, result.validations, result.metrics["accuracy"]) == (1, 1, 0.9)
    assert federation.combiner is not None
    [metric] = federation.combiner.metrics
    assert (metric.sender_name, metric.round_id, metric.step) == ("site-b", "1", 0)
    assert metric.metrics == {"loss": pytest.approx(0.42)}  # a float32 on the wire
    assert "Traceback" not in child.stderr


@SIGINT_INHERITED
async def test_client_run_serves_the_compute_package_until_ctrl_c(
    tmp_path: Path, federation: Federation, sigint_ignored: bool
) -> None:
    script = tmp_path / "client_run.py"
    script.write_text(
        "import os\nfrom fedclient import Client\n"
        "Client({'api_url': os.environ['FEDN_API_URL'], 'api_port': int(os.environ['FEDN_API_PORT']),"
        " 'name': 'runner', 'work_dir': 'work'}).run()\n"
    )
    child = await _start(script, federation, tmp_path, sigint_ignored=sigint_ignored)
    try:
        await federation.wait_for_clients(timeout=60)
        [result] = await federation.run(1)
    finally:
        code = await child.stop(signal.SIGINT, 30)
    assert code == 0, child.tail()
    assert result.updates == 1 and result.metrics["test_accuracy"] > 0.3
    # the controller's package, unpacked into its own directory per version (packages/<sha256 prefix>)
    assert len(list((tmp_path / "work" / "packages").glob("*/fedn.yaml"))) == 1
