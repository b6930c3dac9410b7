"""`fedclient run` SIGKILLed with a finished update in its outbox, then started again: delivered once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

from fedclient.adapters.sandbox.federation import Federation
from fedclient.domain.model import TaskKind

from tests.e2e.conftest import fedclient_exe


async def spawn(fed: Federation, work: Path, cwd: Path, log: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "FEDN_CLIENT_INDEX": "0",
        "FEDN_NUM_CLIENTS": "1",
        "FEDN_DELIVERY_RETRY_MAX": "0.5",
    }
    args = [
        "run",
        "--api-url",
        fed.api_url,
        "--name",
        "kill-me",
        "--client-id",
        "kill-id",
        "--work-dir",
        str(work),
    ]
    return await asyncio.create_subprocess_exec(
        fedclient_exe(), *args, cwd=cwd, env=env, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT
    )


async def outbox_entry(box: Path, timeout: float = 20.0) -> dict[str, object]:
    """The one entry in the outbox, once it is there."""
    deadline = time.monotonic() + timeout
    while True:
        entries = [json.loads(p.read_text()) for p in box.glob("*.json")]
        if len(entries) == 1:
            return entries[0]
        assert time.monotonic() < deadline, f"outbox holds {entries}"
        await asyncio.sleep(0.05)


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_sigkilled_client_delivers_its_outbox_after_restart(tmp_path: Path, digits: Path) -> None:
    fed = Federation(digits, tmp_path / "server", expected_clients=1, round_timeout=120)
    await fed.start()
    combiner = fed.combiner
    assert combiner is not None
    port = combiner.address[1]
    cut = asyncio.Event()
    crashes: list[asyncio.Future[None]] = []

    async def die_mid_upload(model_id: str) -> None:  # the combiner goes away as the update comes in
        combiner.hooks.pop("upload")
        cut.set()
        crashes.append(asyncio.ensure_future(combiner.crash()))
        await asyncio.sleep(5)

    combiner.hooks["upload"] = die_mid_upload
    work, log = tmp_path / "client", tmp_path / "client.log"
    proc = await spawn(fed, work, tmp_path, log)
    second: asyncio.subprocess.Process | None = None
    try:
        await fed.wait_for_clients(timeout=60)
        config = {
            "round_id": "1",
            "session_id": fed.session_id,
            "round_timeout": "120",
            "model_id": fed.seed_model_id,
        }
        corr = combiner.submit_task(
            "kill-id", TaskKind.TRAIN, fed.seed_model_id, fed.session_id, json.dumps(config)
        )
        await asyncio.wait_for(cut.wait(), 120)
        await asyncio.sleep(1.0)  # the client retries against a combiner that is gone
        entry = await outbox_entry(work / "outbox")
        assert not entry["sending"] and not entry["uploaded_id"], "the finished update is on disk, unsent"
        proc.kill()  # SIGKILL: no flush, no goodbye
        await proc.wait()
        t0 = time.monotonic()
        await combiner.start("127.0.0.1", port)
        second = await spawn(fed, work, tmp_path, log)
        [update] = await combiner.wait_for_updates([corr], 120)
        recovery = time.monotonic() - t0
        await asyncio.sleep(1.0)
        assert len(combiner.updates_for(corr)) == 1, "exactly once"
        assert sum(1 for u in combiner.uploads if u.completed) == 1, (
            "the acknowledged upload was not repeated"
        )
        assert not list((work / "outbox").glob("*.json")), "removed once acknowledged"
        print(f"\nRECOVERY client SIGKILL + restart with an update in the outbox: {recovery:.2f} s")
        # and the restarted client goes on serving rounds
        await fed.wait_for_clients(timeout=60)
        result = await fed.run_round(2, update.model_update_id)
        assert result.updates == 1
    finally:
        for p in (proc, second):
            if p is not None:
                await stop(p)
        await fed.stop()
    assert "result(s) from an earlier run wait for delivery" in log.read_text()
