"""What an operator sees from `fedclient run`: bars and a status line on a terminal, plain lines
elsewhere, and Prometheus metrics plus /healthz while a sandbox federation runs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from fedclient.adapters.sandbox.federation import Federation

from tests.child import Child
from tests.e2e.conftest import fedclient_exe

CSI = re.compile(r"\x1b\[")
CHILD_ENV = {"FEDN_CLIENT_INDEX": "0", "FEDN_NUM_CLIENTS": "1", "COLUMNS": "120", "TERM": "xterm-256color"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_federation(tmp_path: Path, digits: Path) -> Federation:
    fed = Federation(digits, tmp_path / "server", expected_clients=1, round_timeout=60)
    await fed.start()
    return fed


def run_args(fed: Federation, tmp_path: Path, *extra: str) -> list[str]:
    return [
        fedclient_exe(),
        "run",
        "-u",
        fed.api_url,
        "--name",
        "op-client",
        "--work-dir",
        str(tmp_path / "c"),
        *extra,
    ]


async def test_on_a_terminal_bars_and_a_status_line(tmp_path: Path, digits: Path) -> None:
    fed = await start_federation(tmp_path, digits)
    master, slave = os.openpty()
    proc = subprocess.Popen(
        run_args(fed, tmp_path),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, **CHILD_ENV},
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            chunks.append(os.read(master, 65536))
        except OSError:  # the child closed the terminal
            loop.remove_reader(master)

    loop.add_reader(master, readable)
    try:
        await fed.wait_for_clients(timeout=60)
        [result] = await fed.run(1)
        assert result.updates == 1
        await asyncio.sleep(1.0)  # a few refreshes of the live line
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
        await asyncio.sleep(0.2)
        loop.remove_reader(master)
        os.close(master)
        await fed.stop()
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert CSI.search(text), "a terminal gets a live display (escape codes)"
    assert re.search(r"model download \w+ .*━", text), "a progress bar for the model download"
    assert re.search(r"model upload \w+ .*━", text), "a progress bar for the upload"
    assert re.search(r"connected 127\.0\.0\.1:\d+ \| (IDLE|TRAINING|VALIDATING) \| session \S+", text)
    assert "tasks 2 done, 0 failed" in text
    assert "Traceback" not in text


async def test_off_a_terminal_plain_lines_and_metrics_during_a_round(tmp_path: Path, digits: Path) -> None:
    fed = await start_federation(tmp_path, digits)
    port = free_port()
    proc = await Child.start(
        *run_args(fed, tmp_path, "--metrics-port", str(port), "--heartbeat-interval", "0.5"),
        cwd=tmp_path,
        env={**os.environ, **CHILD_ENV},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            await fed.wait_for_clients(timeout=60)
            before = await scrape(http, base)
            assert await health(http, base) == 200
            assert before["fedclient_connected"] == 1.0
            assert before['fedclient_tasks_total{kind="train",outcome="ok"}'] == 0.0
            [result] = await fed.run(1)
            assert result.updates == 1
            after = await scrape(http, base)
            assert after['fedclient_tasks_total{kind="train",outcome="ok"}'] == 1.0
            assert after['fedclient_transfer_bytes_total{kind="model_download"}'] > 0
            assert after['fedclient_transfer_bytes_total{kind="model_upload"}'] > 0
            assert after['fedclient_transfer_seconds_total{kind="model_upload"}'] > 0
            assert (
                after['fedclient_state{state="IDLE"}'] + after['fedclient_state{state="VALIDATING"}'] == 1.0
            )
            assert 0 <= after["fedclient_last_heartbeat_age_seconds"] < 5
            assert any(k.startswith("fedclient_combiner{combiner=") for k in after)
            [info] = [k for k in after if k.startswith("fedclient_info{")]
            assert 'client_id=""' not in info and 'name=""' not in info, "labelled with the kept identity"
            # The combiner goes away: /healthz flips to 503 and connected drops to 0.
            await fed.stop()
            codes = []
            for _ in range(60):
                codes.append(await health(http, base))
                if codes[-1] == 503:
                    break
                await asyncio.sleep(0.25)
            assert codes[-1] == 503, codes
            gone = await scrape(http, base)
            assert gone["fedclient_connected"] == 0.0
    finally:
        try:
            code = await proc.stop(signal.SIGTERM, 30)
        finally:
            await fed.stop()
    text = proc.stderr
    assert code == 0, proc.tail()
    assert "\x1b" not in text and "\r" not in text, "no control characters off a terminal"
    assert re.search(r"model download \S+: downloaded [\d.]+ (B|KiB|MiB) in [\d.]+ s, ", text)
    assert re.search(r"model upload \S+: uploaded [\d.]+ (B|KiB|MiB) in [\d.]+ s, ", text)
    assert re.search(r"package download \S+: downloaded ", text)
    # the entry point's own output, line by line, prefixed with the entry name, inside the task context
    assert re.search(
        r"fedclient\.trainer \[client=\S+ session=\S+ round=1 model=\S+\]: train: trained on", text
    )
    assert f"metrics on http://127.0.0.1:{port}/metrics" in text


async def scrape(http: httpx.AsyncClient, base: str) -> dict[str, float]:
    response = await http.get(f"{base}/metrics")
    assert response.status_code == 200
    values = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


async def health(http: httpx.AsyncClient, base: str) -> int:
    for _ in range(40):  # the server may still be starting
        try:
            return (await http.get(f"{base}/healthz")).status_code
        except httpx.TransportError:
            await asyncio.sleep(0.25)
    pytest.fail("the metrics endpoint never answered")
