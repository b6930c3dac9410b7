"""`fedclient run --entrypoint module:object`: the in-process client as a command, on the sandbox."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from fedclient.adapters.sandbox.federation import Federation

from tests.child import Child
from tests.e2e.conftest import DIGITS, fedclient_exe, run_cli

SITE_MODULE = """\
import os
with open("imports.log", "a") as log:
    log.write(f"{os.getpid()}\\n")
from callbacks import models, predict, train, validate  # examples/digits/callbacks.py
"""


async def test_entrypoint_trains_rounds_with_callbacks_loaded_once(
    tmp_path: Path, federation: Federation
) -> None:
    (tmp_path / "site_callbacks.py").write_text(SITE_MODULE)
    env = {**os.environ, "PYTHONPATH": str(DIGITS), "FEDN_CLIENT_INDEX": "0", "FEDN_NUM_CLIENTS": "1"}
    proc = await Child.start(
        fedclient_exe(),
        "run",
        "--api-url",
        federation.api_url,
        "--name",
        "inproc",
        "--client-id",
        "inproc-id",
        "--work-dir",
        str(tmp_path / "work"),
        "--entrypoint",
        "site_callbacks",
        cwd=tmp_path,
        env=env,
    )
    try:
        await federation.wait_for_clients(timeout=60)
        results = await federation.run(2)
    finally:
        code = await proc.stop(signal.SIGTERM, 30)
    assert code == 0, proc.tail()
    assert [r.updates for r in results] == [1, 1]
    assert results[1].metrics["test_accuracy"] > results[0].metrics["test_accuracy"] > 0.3
    assert (tmp_path / "imports.log").read_text().split() == [str(proc.pid)]  # one import, one process
    assert federation.combiner is not None and federation.controller is not None
    assert [(m.round_id, m.step) for m in federation.combiner.metrics] == [("1", 0), ("2", 0)]
    assert federation.combiner.metrics[0].metrics["train_loss"] > 0
    assert federation.combiner.attributes[0].attributes["framework"] == "numpy"
    assert federation.controller.clients["inproc-id"]["package"] == "local"
    assert not (tmp_path / "work" / "package").exists()  # no compute package was fetched


def test_a_bad_entrypoint_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = run_cli(
        "run", "--api-url", "localhost", "--entrypoint", "no_such_mod:x", cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "fedclient: error: --entrypoint no_such_mod:x: cannot import 'no_such_mod'"
    )
