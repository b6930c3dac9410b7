"""Round time and per-task overhead with a 1 MiB model on a real FEDn 0.33 network, three ways.

    python bench/rounds.py                  # 3 reps x 3 rounds of each client
    python bench/rounds.py --quick          # 1 rep x 2 rounds (what `make bench` runs)

The network is the interop harness's (tests/interop/fednnet.py). The package is examples/tiny
with a 1 MiB seed, so training costs almost nothing and what is left is the client. One client
at a time trains a session of --rounds rounds, interleaved by kind:

  subprocess  fedclient's production lifecycle with the subprocess trainer (python train.py ...);
  inprocess   the same lifecycle with the in-process callbacks (examples/tiny/callbacks.py);
  stock       FEDn 0.33's own client (fedn client start, from the FEDn venv).

For the two fedclient kinds the client runs inside this process with its ports wrapped
(app/simulation/task_timing.py): per task, latency = TaskRequest received -> ModelUpdate/Validation
acknowledged, overhead = latency minus the trainer's time. The stock client offers no such
hook, so for it (and for all three) the round time is what the session driver measured:
session start -> all rounds finished, divided by the rounds (FEDn's controller polls, so this
includes its own waits, alike for every client).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TINY = ROOT / "examples" / "tiny"


def run_fedclient(net: Any, kind: str, home: Path, rounds: int) -> dict[str, Any]:
    """One fedclient lifecycle in a thread of this process, while the driver runs a session."""
    from fedclient.adapters.trainers.callback_trainer import callback_trainer_factory, load_package_callbacks
    from fedclient.app.container import build_container
    from fedclient.app.settings_load import load_settings
    from fedclient.app.simulation.task_timing import TaskClock, TaskTimes, TimedConnector, timed_factory

    times = TaskTimes()
    settings = load_settings(
        {"api_url": net.api_url, "name": f"bench-{kind}", "work_dir": home, "local_package": TINY}
    )
    container = build_container(settings)
    clock = TaskClock(times)
    loop = asyncio.new_event_loop()
    factory = (
        callback_trainer_factory(load_package_callbacks(TINY))
        if kind == "inprocess"
        else container.trainer_factory()
    )
    connector = TimedConnector(loop.run_until_complete(container.connector()), clock, times)
    lifecycle = loop.run_until_complete(
        container.lifecycle(connector=connector, trainer_factory=timed_factory(factory, clock))
    )
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            await lifecycle.run(stop)
        finally:
            await container.shutdown_resources()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        result = session(net, rounds)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
    result["latency_s"] = [t.latency for t in times.done]
    result["overhead_s"] = [t.overhead for t in times.done]
    result["own_s"] = [t.own for t in times.done]
    result["calls_s"] = [dict(t.calls) for t in times.done]
    return result


def run_stock(net: Any, home: Path, rounds: int) -> dict[str, Any]:
    from tests.interop.clients import start_stock_client

    client = start_stock_client(net, home.name)
    try:
        return session(net, rounds)
    finally:
        net.finish(client.proc)


def session(net: Any, rounds: int) -> dict[str, Any]:
    result = net.drive(
        {"action": "session", "clients": 1, "rounds": rounds, "round_timeout": 60, "client_timeout": 90},
        timeout=300,
    )
    if not result.get("complete"):
        raise SystemExit(f"session incomplete: {json.dumps(result)[:2000]}")
    return {"round_s": result["seconds_to_finish"] / rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default="subprocess,inprocess,stock")
    parser.add_argument("--quick", action="store_true", help="1 rep of 2 rounds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reps, rounds = (1, 2) if args.quick else (args.reps, args.rounds)
    kinds = [k for k in args.kinds.split(",") if k]

    from fedclient.adapters.package_build import build_package

    from tests.interop.fednnet import FednNetwork

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fedclient-rounds-") as tmp:
        work = Path(tmp)
        seed = work / "seed.npz"
        os.environ["TINY_MODEL_KIB"] = "1024"
        sys.path.insert(0, str(TINY))
        import tiny  # examples/tiny/tiny.py

        seed.write_bytes(tiny.seed())
        archive = build_package(TINY, work / "tiny.tgz")
        for rep in range(reps):
            order = kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]
            for kind in order:
                home = work / f"{kind}-{rep}"
                home.mkdir()
                # A fresh network each time: a client that just left still counts as online for a
                # while, and a session would wait for its updates until the round timeout.
                with FednNetwork(home / "fedn") as net:
                    net.drive(
                        {
                            "action": "setup",
                            "package": str(archive),
                            "package_name": "tiny",
                            "helper": "numpyhelper",
                            "seed": str(seed),
                        }
                    )
                    if kind == "stock":
                        row = run_stock(net, home, rounds)
                    else:
                        row = run_fedclient(net, kind, home / "work", rounds)
                row.update(kind=kind, rep=rep)
                rows.append(row)
                ovh = row.get("overhead_s") or []
                extra = ""
                if ovh:
                    extra = (
                        f", overhead p50 {statistics.median(ovh) * 1000:.1f} ms "
                        f"(own {statistics.median(row['own_s']) * 1000:.1f} ms)"
                    )
                print(f"  {kind:10s} round {row['round_s']:.2f} s{extra}", flush=True)
    print(
        f"\nreal FEDn 0.33 network on loopback, {os.cpu_count()} CPUs, 1 MiB model, 1 client, {rounds} rounds"
    )
    print(f"{'client':10s} {'round s [range]':>18s} {'task overhead p50 / p90 / max (ms)':>38s}  breakdown")
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        per_round = [r["round_s"] for r in mine]
        ovh = sorted(v for r in mine for v in r.get("overhead_s", []))
        spread = f"{statistics.median(per_round):.2f} [{min(per_round):.2f}-{max(per_round):.2f}]"
        if ovh:
            p90 = ovh[min(len(ovh) - 1, int(0.9 * len(ovh)))]
            o = f"{statistics.median(ovh) * 1000:.1f} / {p90 * 1000:.1f} / {ovh[-1] * 1000:.1f}"
        else:
            o = "(no hook in the stock client)"
        calls = [c for r in mine for c in r.get("calls_s", [])]
        parts = []
        for name in ("status", "download", "upload", "result"):
            values = [c.get(name, 0.0) for c in calls]
            if values:
                parts.append(f"{name} {statistics.median(values) * 1000:.1f}")
        own = [v for r in mine for v in r.get("own_s", [])]
        if own:
            parts.append(f"own {statistics.median(own) * 1000:.1f}")
        print(f"{kind:10s} {spread:>18s} {o:>38s}  {', '.join(parts)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
