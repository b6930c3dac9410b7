"""Heartbeat jitter while a CPU-bound numpy callback trains: worker thread vs worker process.

    python bench/heartbeat_jitter.py [--seconds 6] [--interval 0.1]

The client's event loop sends heartbeats over the real gRPC adapter to a sandbox
combiner in a child process, sleeping ``--interval`` between them (as the lifecycle
does), while a numpy minibatch-SGD training loop (many small array operations, the
GIL-heavy case) runs:

- ``idle``: no training (the baseline);
- ``thread``: on the in-process trainer's worker thread (what fedclient ships);
- ``process``: in a persistent worker process (a warmed-up one-process pool).

``--workload python`` trains nothing real: a pure-Python loop, the GIL's worst case.

Printed per mode: heartbeats sent, how late each one was against its schedule
(p50 / p99 / max, ms), and the training steps done (the price of each runner).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fedclient.adapters.combiner_grpc.link import GrpcConnector
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.adapters.trainers.callback_trainer import Callbacks, CallbackTrainer
from fedclient.domain.model import CombinerAddress, Identity


async def serve(model_dir: Path, port_file: Path) -> None:
    combiner = SandboxCombiner(model_dir)
    port = await combiner.start("127.0.0.1", 0)
    port_file.write_text(str(port))
    await asyncio.Event().wait()


def sgd(seconds: float) -> int:
    """Softmax regression by minibatch SGD on random data, for ``seconds``; returns the steps done."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 64))
    y = rng.integers(0, 10, 20_000)
    w = np.zeros((64, 10))
    steps, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        idx = rng.integers(0, len(x), 32)
        logits = x[idx] @ w
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(32), y[idx]] -= 1
        w -= 0.01 * x[idx].T @ p / 32
        steps += 1
    return steps


def pure_python(seconds: float) -> int:
    """The GIL's worst case: a loop of Python bytecode that never releases it voluntarily."""
    steps, end = 0, time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        for i in range(1000):
            total += i * i
        steps += 1
    return steps


WORKLOADS = {"numpy": sgd, "python": pure_python}


async def heartbeats(link: Any, interval: float, until: asyncio.Event) -> list[float]:
    """Lateness (s) of each heartbeat against its schedule: sent at t0 + k·interval ideally."""
    late: list[float] = []
    loop = asyncio.get_running_loop()
    last = loop.time()
    while not until.is_set():
        await asyncio.sleep(interval)
        await link.heartbeat()
        now = loop.time()
        late.append(now - last - interval)
        last = now
    return late


async def measure(
    mode: str, link: Any, seconds: float, interval: float, pool: Any, work: Any
) -> tuple[list[float], int]:
    done = asyncio.Event()
    beats = asyncio.create_task(heartbeats(link, interval, done))
    await asyncio.sleep(interval * 3)  # let the loop settle
    if mode == "idle":
        await asyncio.sleep(seconds)
        steps = 0
    elif mode == "thread":
        trainer = CallbackTrainer(Callbacks(train=lambda m, s: (b"", {"num_examples": work(seconds)})))
        with tempfile.TemporaryDirectory() as scratch:
            model = Path(scratch) / "m"
            model.write_bytes(b"")
            meta = await trainer.train(model, Path(scratch) / "out", {})
        steps = int(meta["num_examples"])
    else:
        steps = await asyncio.get_running_loop().run_in_executor(pool, work, seconds)
    done.set()
    late = await beats
    return late[3:], steps


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(seconds: float, interval: float, workload: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        port_file = Path(scratch) / "port"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", scratch],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not port_file.exists() or not port_file.read_text():
                await asyncio.sleep(0.05)
            address = CombinerAddress("127.0.0.1", int(port_file.read_text()))
            link = await GrpcConnector(token=None).connect(address, Identity("bench", "bench-1"))
            with concurrent.futures.ProcessPoolExecutor(1, multiprocessing.get_context("spawn")) as pool:
                pool.submit(sgd, 0.1).result()  # start and warm the worker process
                print(
                    f"cores: {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, "
                    f"interval {interval * 1000:.0f} ms, "
                    f"{seconds:g} s of {workload} training"
                )
                print(f"{'runner':8} {'beats':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'steps':>9}")
                for mode in ("idle", "thread", "process"):
                    late, steps = await measure(mode, link, seconds, interval, pool, WORKLOADS[workload])
                    print(
                        f"{mode:8} {len(late):5d} {ms(late, 0.5):7.1f} {ms(late, 0.99):7.1f} "
                        f"{1000 * max(late):7.1f} {steps:9d}   (mean {1000 * statistics.mean(late):.1f} ms)"
                    )
            await link.close()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="numpy")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve) / "models", Path(args.serve) / "port"))
    else:
        asyncio.run(main(args.seconds, args.interval, args.workload))
