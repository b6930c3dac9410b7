"""How many simulated clients one real FEDn 0.33 combiner takes before a round fails.

    python bench/fedn_combiner.py                      # N = 100, 300, 400
    python bench/fedn_combiner.py --clients 200,350 --round-timeout 120

Needs the FEDn venv (``make fedn-venv``). For each N: a fresh FEDn network on loopback
(moto S3, controller, one combiner with ``max_clients`` = N, tests/interop/fednnet.py),
examples/tiny uploaded with its seed model, ``fedclient simulate --api-url`` with N
clients, then one round (FEDn's own session, fedavg) with every client required.
Printed per N: how many clients the controller counted online, whether the round
finished, the updates aggregated, and what simulate's aggregated lines said (the
client-side symptom).

FEDn's combiner runs its gRPC server on a fixed pool of 350 threads
(fedn/network/grpc/server.py) and each open TaskStream holds one of them; the rest of
a client's calls (heartbeats, statuses, transfers) wait for a free thread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fedclient.adapters.package_build import build_package  # noqa: E402

from tests.interop.fednnet import FednNetwork, NetworkError  # noqa: E402

PACKAGE = ROOT / "examples" / "tiny"
FEDCLIENT = Path(sys.executable).parent / "fedclient"


class _Network(FednNetwork):
    """A network whose combiner gives a round to as many clients as there are (FEDn's ``max_clients``)."""

    max_clients = 30

    def _write_config(self) -> None:
        super()._write_config()
        path = self.workdir / "combiner.yaml"
        config = json.loads(path.read_text())
        config["max_clients"] = self.max_clients
        path.write_text(json.dumps(config, indent=2))


def measure(clients: int, round_timeout: int, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True)
    seed = work / "seed.npz"
    subprocess.run([sys.executable, "build.py", str(seed)], cwd=PACKAGE, check=True, capture_output=True)
    archive = build_package(PACKAGE, work / "tiny.tgz")
    net = _Network(work / "fedn")
    net.max_clients = clients
    row: dict[str, Any] = {"clients": clients}
    with net:
        net.drive({"action": "setup", "package": str(archive), "package_name": "tiny", "seed": str(seed)})
        cmd = [str(FEDCLIENT), "simulate", "--api-url", net.api_url, "--clients", str(clients)]
        cmd += ["--package", str(PACKAGE), "--duration", "100000", "--work-dir", str(work / "sim")]
        sim = net.spawn("simulate", cmd)
        t0 = time.monotonic()
        try:
            result = net.drive(
                {
                    "action": "session",
                    "clients": clients,
                    "rounds": 1,
                    "round_timeout": round_timeout,
                    "client_timeout": 180,
                    "timeout": round_timeout + 120,
                    "grace": 30,
                },
                timeout=round_timeout + 600,
            )
            rounds = result.get("rounds", [])
            row["round_finished"] = bool(rounds) and result.get("complete", False)
            row["rounds"] = [
                {
                    "status": r.get("status"),
                    "aggregated": r.get("nr_aggregated_models"),
                    "validations": len(r.get("validations", [])),
                }
                for r in rounds
            ]
        except NetworkError as exc:
            row["round_finished"] = False
            row["error"] = str(exc).splitlines()[0][:300]
        row["seconds"] = time.monotonic() - t0
        net.finish(sim, grace=20)
        log = (work / "fedn" / "simulate.log").read_text(errors="replace").splitlines()
        row["simulate_lines"] = [line for line in log if "simulate" in line][-6:]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default="100,300,400", help="comma-separated values of N")
    parser.add_argument("--round-timeout", type=int, default=180)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fedclient-fedn-limit-") as tmp:
        for n in [int(v) for v in args.clients.split(",") if v]:
            row = measure(n, args.round_timeout, Path(tmp) / f"n{n}")
            rows.append(row)
            print(
                f"N={n}: round finished {row['round_finished']} in {row['seconds']:.0f} s; "
                f"{row.get('rounds', '')} {row.get('error', '')}",
                flush=True,
            )
            for line in row["simulate_lines"]:
                print(f"    {line[:240]}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
