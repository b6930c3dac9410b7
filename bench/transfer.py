"""Model transfer throughput and client memory over loopback, through the real gRPC adapter.

    python bench/transfer.py --mib 256 [--repeat 3]

The combiner (our sandbox, FEDn's chunk protocol) runs in a child process so that
the figures printed are the client's alone: MiB/s per direction and the client's
peak RSS, which must stay flat as the model grows (files are streamed, never held).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedclient.adapters.combiner_grpc.link import GrpcConnector
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.model import CombinerAddress, Identity


async def serve(model_dir: Path, port_file: Path) -> None:
    combiner = SandboxCombiner(model_dir)
    port = await combiner.start("127.0.0.1", 0)
    port_file.write_text(str(port))
    await asyncio.Event().wait()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(mib):
            block = os.urandom(1 << 20)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


async def measure(port: int, src: Path, work: Path, repeat: int) -> list[tuple[str, float]]:
    connector = GrpcConnector(token=None)
    link = await connector.connect(CombinerAddress("127.0.0.1", port), Identity("bench", "bench-id"))
    size = src.stat().st_size / (1 << 20)
    rows: list[tuple[str, float]] = []
    try:
        for n in range(repeat):
            t0 = time.perf_counter()
            await link.upload(f"bench-{n}", src)
            rows.append(("upload", size / (time.perf_counter() - t0)))
            dest = work / f"down-{n}"
            t0 = time.perf_counter()
            await link.download(f"bench-{n}", dest)
            rows.append(("download", size / (time.perf_counter() - t0)))
            dest.unlink()
    finally:
        await link.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mib", type=int, default=256, help="model size in MiB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", nargs=2, metavar=("MODEL_DIR", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve[0]), Path(args.serve[1])))
        return
    with tempfile.TemporaryDirectory(prefix="fedclient-bench-") as tmp:
        work = Path(tmp)
        port_file = work / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(work / "models"), str(port_file)])
        try:
            src = work / "model.bin"
            make_file(src, args.mib)
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the benchmark combiner did not start")
                time.sleep(0.05)
            baseline = peak_rss_mib()
            rows = asyncio.run(measure(int(port_file.read_text()), src, work, args.repeat))
        finally:
            server.terminate()
            server.wait(10)
    print(f"model {args.mib} MiB, 1 MiB chunks, grpc.aio + protobuf, loopback")
    for direction in ("download", "upload"):
        speeds = sorted(v for d, v in rows if d == direction)
        print(
            f"{direction:9s} median {speeds[len(speeds) // 2]:7.1f} MiB/s  (runs: "
            + ", ".join(f"{v:.0f}" for v in speeds)
            + ")"
        )
    print(f"client peak RSS {peak_rss_mib():.0f} MiB (before transfers: {baseline:.0f} MiB)")


if __name__ == "__main__":
    main()
