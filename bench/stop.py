"""How long `fedclient simulate` takes to stop on SIGTERM/SIGINT with thousands of clients mid-round.

    python bench/stop.py                          # 5,000 clients, SIGTERM 20 s into round 1, 3 times
    python bench/stop.py --clients 1000 --after 5 --runs 1 --signal INT

Each run starts ``fedclient simulate --clients N --package examples/tiny --rounds 3`` with its
own TMPDIR, waits until the first task directory appears (round 1 under way: the group's
``tasks`` dir, in its scratch under the temporary work dir), then ``--after`` seconds more,
sends the signal and times the exit. Printed per run: seconds from the signal to the exit,
the exit status, the close's steps from the summary (``stop_s``), what is left in TMPDIR, and
stderr's last two lines (the aggregated stop line, and the abandoned clients). An e2e test
stops 1,000 clients the same way (tests/e2e/test_simulate_cli.py); 5,000 take a minute or
more to join, which is bench work.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "examples" / "tiny"
FEDCLIENT = Path(sys.executable).parent / "fedclient"


def one_run(clients: int, after: float, sig: signal.Signals, join_timeout: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-stop-") as scratch:
        temp = Path(scratch) / "tmp"
        temp.mkdir()
        summary = Path(scratch) / "summary.json"
        argv = [str(FEDCLIENT), "simulate", "--clients", str(clients), "--package", str(PACKAGE)]
        argv += ["--rounds", "3", "--json", str(summary)]
        env = {**os.environ, "TMPDIR": str(temp)}
        started = time.monotonic()
        with open(Path(scratch) / "stderr.txt", "w") as stderr:
            child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                while not list(temp.glob("fedclient-simulate-*/*/tasks")):
                    if child.poll() is not None:
                        raise SystemExit(f"simulate exited {child.returncode} before round 1")
                    if time.monotonic() - started > join_timeout:
                        raise SystemExit(f"round 1 did not start within {join_timeout:.0f} s")
                    time.sleep(0.2)
                round_at = time.monotonic() - started
                time.sleep(after)
                signalled = time.monotonic()
                child.send_signal(sig)
                code = child.wait(timeout=120)
                took = time.monotonic() - signalled
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        report = json.loads(summary.read_text()) if summary.exists() else {}
        tail = (Path(scratch) / "stderr.txt").read_text().strip().splitlines()[-2:]
        return {
            "clients": clients,
            "round_started_s": round(round_at, 1),
            "exit_s": round(took, 2),
            "status": code,
            "stop_s": report.get("stop_s"),
            "tasks_done": report.get("tasks"),
            "temp_left": [p.name for p in temp.iterdir()],
            "last_lines": tail,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--after", type=float, default=20.0, help="seconds into round 1 (default 20)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--signal", default="TERM", choices=["TERM", "INT"])
    parser.add_argument("--join-timeout", type=float, default=600.0)
    args = parser.parse_args()
    sig = signal.Signals[f"SIG{args.signal}"]
    for run in range(1, args.runs + 1):
        result = one_run(args.clients, args.after, sig, args.join_timeout)
        print(f"run {run}: {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main()
