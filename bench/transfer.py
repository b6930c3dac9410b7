"""Model transfer throughput and peak RSS: fedclient beside the stock FEDn client and the raw-bytes ceiling.

    python bench/transfer.py                      # 1, 100, 500 MiB; real FEDn 0.33 combiner and sandbox
    python bench/transfer.py --gib                # adds 1 GiB
    python bench/transfer.py --quick              # what `make bench` runs
    python bench/transfer.py --sizes 256 --reps 5 --servers fedn --json out.json

Every measured client is a fresh process (bench/transfer_clients.py) that uploads the model
file and then downloads it back. Against the real FEDn 0.33 combiner (the interop harness,
tests/interop/fednnet.py: moto S3 + controller + combiner on loopback) the combiner is
restarted before every client, so each upload meets a fresh combiner state, as in a real
round; the sandbox combiner (ours, grpc.aio) is started afresh the same way. The three
kinds run interleaved, in a rotating order, in one run on the same server:

  fedclient  our adapter, file to file;
  stock      FEDn 0.33's client code from the FEDn venv (gRPC calls only are timed);
  ceiling    a sync stub with hand-encoded chunks and no protobuf objects, no disk.

Printed per server and size: median MiB/s [min-max] up and down, peak RSS, and the
ratios fedclient/stock and fedclient/ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENTS = Path(__file__).resolve().parent / "transfer_clients.py"
KINDS = ("fedclient", "stock", "ceiling", "baseline")
MIB = 1 << 20


def make_file(path: Path, mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for i in range(mib):
            out.write(i.to_bytes(8, "little") + block[8:])  # distinct blocks, cheap to make


def fedn_python() -> Path:
    from tests.interop.fedn_venv import DEFAULT_VENV, venv_python

    return venv_python(DEFAULT_VENV)


BASELINE: Path | None = None  # --baseline: a directory holding an older fedclient package


def run_client(kind: str, port: int, src: Path, work: Path, model_id: str) -> dict[str, Any]:
    python = str(fedn_python()) if kind == "stock" else sys.executable
    dest = work / f"down-{model_id}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    runner = kind
    if kind == "baseline":
        assert BASELINE is not None
        env["PYTHONPATH"] = str(BASELINE)  # its fedclient/ shadows the installed one
        runner = "fedclient"
    cmd = [python, str(CLIENTS), runner, "127.0.0.1", str(port), str(src), str(dest), model_id]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    dest.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} transfer failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------ servers --


class FednServer:
    """The real FEDn 0.33 network; ``fresh()`` restarts its combiner."""

    name = "fedn-0.33"

    def __init__(self, work: Path) -> None:
        from tests.interop.fednnet import FednNetwork

        self.net = FednNetwork(work / "fedn")

    def __enter__(self) -> FednServer:
        self.net.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.net.stop()

    def fresh(self) -> int:
        self.net.restart_combiner()
        return self.net.combiner_port


async def _serve_sandbox(model_dir: Path, port_file: Path) -> None:
    from fedclient.adapters.sandbox.combiner import SandboxCombiner

    combiner = SandboxCombiner(model_dir)
    port = await combiner.start("127.0.0.1", 0)
    port_file.write_text(str(port))
    await asyncio.Event().wait()


class SandboxServer:
    """Our sandbox combiner in a child process, started afresh for every client."""

    name = "sandbox"

    def __init__(self, work: Path) -> None:
        self.work = work / "sandbox"
        self.proc: subprocess.Popen[bytes] | None = None
        self.count = 0

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def fresh(self) -> int:
        self._stop()
        self.count += 1
        models = self.work / f"models-{self.count}"
        port_file = self.work / f"port-{self.count}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(models), str(port_file)])
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the sandbox combiner did not start")
            time.sleep(0.05)
        return int(port_file.read_text())


@contextmanager
def server(kind: str, work: Path) -> Iterator[FednServer | SandboxServer]:
    srv: FednServer | SandboxServer = FednServer(work) if kind == "fedn" else SandboxServer(work)
    with srv:
        yield srv


# ------------------------------------------------------------------ report --


def _spread(values: list[float]) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:6.0f}"
    return f"{med:6.0f} [{min(values):.0f}-{max(values):.0f}]"


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (server, size, kind), and the ratios of fedclient's medians to the others'."""
    out: list[dict[str, Any]] = []
    keys = sorted({(r["server"], r["mib"]) for r in rows})
    for srv, mib in keys:
        entry: dict[str, Any] = {"server": srv, "mib": mib}
        for kind in KINDS:
            mine = [r for r in rows if (r["server"], r["mib"], r["kind"]) == (srv, mib, kind)]
            if not mine:
                continue
            entry[kind] = {
                "up": [r["up_mibs"] for r in mine],
                "down": [r["down_mibs"] for r in mine],
                "rss": [r["peak_rss_mib"] for r in mine],
            }
        out.append(entry)
    return out


def print_report(summary: list[dict[str, Any]]) -> None:
    print(
        f"{'server':10s} {'MiB':>5s} {'client':9s} {'up MiB/s [range]':>22s} {'down MiB/s [range]':>22s}"
        f" {'peak RSS MiB':>14s}"
    )
    for entry in summary:
        for kind in KINDS:
            if kind not in entry:
                continue
            k = entry[kind]
            print(
                f"{entry['server']:10s} {entry['mib']:5d} {kind:9s} {_spread(k['up']):>22s} "
                f"{_spread(k['down']):>22s} {_spread(k['rss']):>14s}"
            )
        if "fedclient" in entry:
            med = {
                kind: {d: statistics.median(entry[kind][d]) for d in ("up", "down")}
                for kind in KINDS
                if kind in entry
            }
            parts = []
            for other in ("stock", "ceiling"):
                if other in med:
                    parts.append(
                        f"fedclient/{other}: up {med['fedclient']['up'] / med[other]['up']:.2f}x, "
                        f"down {med['fedclient']['down'] / med[other]['down']:.2f}x"
                    )
            print(f"{'':16s} " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1,100,500", help="model sizes in MiB, comma-separated")
    parser.add_argument("--gib", action="store_true", help="also 1 GiB (1024 MiB)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each client per size and server")
    parser.add_argument("--servers", default="fedn,sandbox", help="fedn, sandbox or both")
    parser.add_argument("--kinds", default="fedclient,stock,ceiling", help="which clients")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a directory with another fedclient package in it (fedclient/...): adds kind 'baseline'",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where model files are written and read (default: a temporary directory; "
        "/dev/shm keeps disk writeback out of the figures)",
    )
    parser.add_argument("--quick", action="store_true", help="1 and 100 MiB, 2 runs, FEDn only")
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--serve", nargs=2, metavar=("MODEL_DIR", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve_sandbox(Path(args.serve[0]), Path(args.serve[1])))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    servers = [s for s in args.servers.split(",") if s]
    reps = args.reps
    if args.quick:
        sizes, reps, servers = [1, 100], 2, ["fedn"]
    if args.gib:
        sizes.append(1024)
    kinds = [k for k in args.kinds.split(",") if k]
    if args.baseline:
        global BASELINE
        BASELINE = args.baseline.resolve()
        kinds.append("baseline")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fedclient-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        for srv_kind in servers:
            with server(srv_kind, work) as srv:
                for mib in sizes:
                    src = work / f"model-{mib}.bin"
                    make_file(src, mib)
                    for rep in range(reps):
                        order = kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]
                        for kind in order:
                            port = srv.fresh()
                            got = run_client(kind, port, src, work, f"bench-{kind}-{mib}-{rep}")
                            row = {
                                "server": srv.name,
                                "mib": mib,
                                "kind": kind,
                                "rep": rep,
                                "up_mibs": mib / got["up_s"],
                                "down_mibs": mib / got["down_s"],
                                "peak_rss_mib": got["peak_rss_mib"],
                                "peak_rss_after_upload_mib": got.get("peak_rss_after_upload_mib"),
                            }
                            rows.append(row)
                            print(
                                f"  {srv.name} {mib} MiB {kind:9s} up {row['up_mibs']:6.0f} "
                                f"down {row['down_mibs']:6.0f} MiB/s, peak RSS {row['peak_rss_mib']:.0f} MiB "
                                f"(after the upload {row['peak_rss_after_upload_mib'] or 0:.0f})",
                                flush=True,
                            )
                    src.unlink()
    summary = summarize(rows)
    print(f"\nloopback, {os.cpu_count()} CPUs, chunks 1 MiB; median [min-max] of {reps} runs each")
    print_report(summary)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
