"""The README's Python examples, extracted from README.md and run as scripts against the sandbox."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.federation import Federation

from tests.e2e.conftest import DIGITS, ROOT

_BLOCK = re.compile(r"<!-- readme-example: (\w+) -->\n```python\n(.*?)```", re.S)


def readme_example(name: str) -> str:
    blocks = dict(_BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")))
    assert name in blocks, f"README.md has no example marked {name!r}"
    return blocks[name]


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    fed = Federation(DIGITS, tmp_path / "server", expected_clients=1, round_timeout=60)
    await fed.start()
    try:
        yield fed
    finally:
        await fed.stop()


async def _start(script: Path, federation: Federation, cwd: Path) -> asyncio.subprocess.Process:
    assert federation.controller is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDN_")}
    env.update(
        FEDN_API_URL="127.0.0.1",
        FEDN_API_PORT=str(federation.controller.port),
        MODEL_ID=federation.seed_model_id,
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_the_api_example_assigns_connects_downloads_and_uploads(
    tmp_path: Path, federation: Federation
) -> None:
    script = tmp_path / "api_example.py"
    script.write_text(readme_example("api"))
    proc = await _start(script, federation, tmp_path)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert federation.combiner is not None
    seed = federation.combiner.model_path(federation.seed_model_id).read_bytes()
    _, new_id, size, _ = stdout.decode().split()
    assert int(size) == len(seed)
    assert federation.combiner.model_path(new_id).read_bytes() == seed
    assert (tmp_path / "model.npz").read_bytes() == seed


async def test_the_in_process_example_trains_a_round_and_stops_on_ctrl_c(
    tmp_path: Path, federation: Federation
) -> None:
    script = tmp_path / "inprocess_example.py"
    script.write_text(readme_example("inprocess"))
    proc = await _start(script, federation, tmp_path)
    try:
        await federation.wait_for_clients(timeout=60)
        [result] = await federation.run(1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert (result.updates, result.validations, result.metrics["accuracy"]) == (1, 1, 0.9)
    assert federation.combiner is not None
    [metric] = federation.combiner.metrics
    assert (metric.sender_name, metric.round_id, metric.step) == ("site-b", "1", 0)
    assert metric.metrics == {"loss": pytest.approx(0.42)}  # a float32 on the wire
    assert "Traceback" not in stderr.decode()


async def test_client_run_serves_the_compute_package_until_ctrl_c(
    tmp_path: Path, federation: Federation
) -> None:
    script = tmp_path / "client_run.py"
    script.write_text(
        "import os\nfrom fedclient import Client\n"
        "Client({'api_url': os.environ['FEDN_API_URL'], 'api_port': int(os.environ['FEDN_API_PORT']),"
        " 'name': 'runner', 'work_dir': 'work'}).run()\n"
    )
    proc = await _start(script, federation, tmp_path)
    try:
        await federation.wait_for_clients(timeout=60)
        [result] = await federation.run(1)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert result.updates == 1 and result.metrics["accuracy"] > 0.3
    # the controller's package, unpacked into its own directory per version (packages/<sha256 prefix>)
    assert len(list((tmp_path / "work" / "packages").glob("*/fedn.yaml"))) == 1
