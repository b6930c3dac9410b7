"""Many clients in one process: RSS per idle client, task latency, and who runs out of CPU first.

    python bench/scale.py                   # N = 10, 100, 300, 1000
    python bench/scale.py --quick           # N = 10, 100 (what `make bench` runs)
    python bench/scale.py --clients 2000 --rounds 3
    python bench/scale.py --ray 1000        # Ray: two nodes on this machine, simulate --ray
    python bench/scale.py --one-process --clients 1000,5000 --rounds 3   # simulate with its own sandbox

For each N two processes run side by side on this machine:
  server  the sandbox federation (controller + combiner + FedAvg, bench/scale.py --serve),
          which waits for N clients and then trains --rounds rounds of examples/tiny;
  clients ``fedclient simulate --api-url <server> --clients N`` (the callback trainer, the
          package's callbacks.py on one thread pool all the clients share).
The CPU each process burns during the rounds is read from /proc: the one near a full
core (Python, one GIL) is the limit. Printed per N: join time, RSS idle and per client,
round time, task latency p50/p99 (TaskRequest received -> result acknowledged, client side),
overhead p50/p99 (latency minus the callbacks), and CPU% of each process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "examples" / "tiny"
FEDCLIENT = Path(sys.executable).parent / "fedclient"
TICK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


async def _serve(clients: int, rounds: int, info: Path) -> None:
    from fedclient.adapters.sandbox.federation import Federation

    federation = Federation(PACKAGE, info.parent / "server", clients, round_timeout=1800)
    await federation.start()
    info.write_text(json.dumps({"api_url": federation.api_url}))
    try:
        await federation.wait_for_clients(timeout=1800)
        (info.parent / "joined").write_text(str(time.time()))
        cpu0, wall0 = time.process_time(), time.monotonic()
        results = await federation.run(rounds)
        out = {
            "rounds": [r.as_json() for r in results],
            "cpu_rounds_s": time.process_time() - cpu0,
            "wall_rounds_s": time.monotonic() - wall0,
        }
        (info.parent / "server.json").write_text(json.dumps(out))
    finally:
        await federation.stop()


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen (exit {proc.poll()})")
        time.sleep(0.1)


def measure(clients: int, rounds: int, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True)
    info = work / "server-info.json"
    env = {**os.environ, "TINY_MODEL_KIB": "4"}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(clients), str(rounds), str(info)], env=env
    )
    sim: subprocess.Popen[bytes] | None = None
    try:
        _wait_file(info, server, 120, "the sandbox server start")
        api_url = json.loads(info.read_text())["api_url"]
        out = work / "simulate.json"
        cmd = [str(FEDCLIENT), "simulate", "--api-url", api_url, "--clients", str(clients)]
        cmd += ["--package", str(PACKAGE), "--duration", "100000", "--json", str(out)]
        cmd += ["--work-dir", str(work / "clients"), "--log-level", "ERROR"]
        sim = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        _wait_file(work / "joined", server, 1800, "joining")
        c0, t0, m0 = cpu_seconds(sim.pid), time.monotonic(), machine_busy()
        while server.poll() is None:
            c1, t1, m1 = cpu_seconds(sim.pid), time.monotonic(), machine_busy()
            time.sleep(0.2)
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=300)
        if server.returncode != 0 or not (work / "server.json").exists():
            raise SystemExit(f"the sandbox server failed (exit {server.returncode})")
        srv = json.loads((work / "server.json").read_text())
        got = json.loads(out.read_text())
        return {
            "clients": clients,
            "join_s": got["join_seconds"],
            "rss_before_mib": got["rss_before_mib"],
            "rss_idle_mib": got["rss_idle_mib"],
            "rss_per_client_kib": got["rss_per_client_kib"],
            "round_s": [r["seconds"] for r in srv["rounds"]],
            "updates": [r["updates"] for r in srv["rounds"]],
            "latency_s": got["train_latency_s"],
            "overhead_s": got["overhead_s"],
            "client_cpu_pct": 100 * (c1 - c0) / max(t1 - t0, 1e-9),
            "server_cpu_pct": 100 * srv["cpu_rounds_s"] / max(srv["wall_rounds_s"], 1e-9),
            # All CPUs of the machine (other work included), 100% = every core busy.
            "machine_busy_pct": 100 * (m1[0] - m0[0]) / max(m1[1] - m0[1], 1),
        }
    finally:
        for proc in (sim, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)


def one_process(clients: int, rounds: int, work: Path) -> dict[str, Any]:
    """Scenario: ``fedclient simulate`` alone, the sandbox in its own process (one loop, one core).

    Figures: join time, RSS idle and peak (VmHWM, rounds included), KiB per idle client,
    round times, task latency percentiles, lines written to stderr and the client warnings
    counted into the aggregated lines instead.
    """
    work.mkdir(parents=True)
    out, err = work / "simulate.json", work / "stderr.log"
    cmd = [str(FEDCLIENT), "simulate", "--clients", str(clients), "--rounds", str(rounds)]
    cmd += ["--package", str(PACKAGE), "--json", str(out), "--work-dir", str(work / "clients")]
    t0 = time.monotonic()
    with err.open("wb") as stderr:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=stderr, check=False)
    wall = time.monotonic() - t0
    got = json.loads(out.read_text()) if out.exists() else {}
    return {
        "clients": clients,
        "exit": proc.returncode,
        "wall_s": wall,
        "join_s": got.get("join_seconds"),
        "rounds": [(r["round"], r["updates"], r["seconds"]) for r in got.get("rounds", [])],
        "rss_idle_mib": got.get("rss_idle_mib"),
        "rss_peak_mib": got.get("rss_peak_mib"),
        "rss_per_client_kib": got.get("rss_per_client_kib"),
        "latency_s": got.get("train_latency_s"),
        "stderr_lines": len(err.read_bytes().splitlines()),
        "client_warnings": got.get("client_warnings"),
        "failed": got.get("failed"),
    }


def report_one_process(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        lat = r["latency_s"] or {}
        rounds = ", ".join(f"{n}: {u} updates {sec:.0f} s" for n, u, sec in r["rounds"]) or "none"
        print(
            f"N={r['clients']}: exit {r['exit']}, {r['wall_s']:.0f} s wall, join {r['join_s'] or 0:.0f} s; "
            f"rounds {rounds}; RSS idle {r['rss_idle_mib'] or 0:.0f} MiB "
            f"({r['rss_per_client_kib'] or 0:.0f} KiB/client), peak {r['rss_peak_mib'] or 0:.0f} MiB; "
            f"train latency p50 {lat.get('p50', 0):.1f} s p99 {lat.get('p99', 0):.1f} s; "
            f"stderr {r['stderr_lines']} lines ({r['client_warnings']} client warnings aggregated)"
            + (f"; failed: {r['failed']}" if r["failed"] else "")
        )


def report(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'clients':>7s} {'join s':>7s} {'RSS idle':>9s} {'KiB/client':>10s} {'round s':>8s} "
        f"{'train p50':>10s} {'p99':>8s} {'ovh p50':>8s} {'p99':>8s} {'CPU% cli':>8s} {'CPU% srv':>8s}  limit"
    )
    for r in rows:
        lat, ovh = r["latency_s"], r["overhead_s"]
        limit = "combiner" if r["server_cpu_pct"] > r["client_cpu_pct"] else "clients"
        if max(r["server_cpu_pct"], r["client_cpu_pct"]) < 80:
            busy = r.get("machine_busy_pct", 0)
            limit = "the machine (shared CPUs all busy)" if busy > 90 else limit + " (neither saturated)"
        print(
            f"{r['clients']:7d} {r['join_s']:7.1f} {r['rss_idle_mib']:7.0f} M "
            f"{r['rss_per_client_kib']:10.0f} {statistics.median(r['round_s']):8.2f} "
            f"{lat.get('p50', 0) * 1000:8.0f}ms {lat.get('p99', 0) * 1000:6.0f}ms "
            f"{ovh.get('p50', 0) * 1000:6.0f}ms {ovh.get('p99', 0) * 1000:6.0f}ms "
            f"{r['client_cpu_pct']:8.0f} {r['server_cpu_pct']:8.0f} "
            f"{r.get('machine_busy_pct', 0):7.0f}%  {limit}"
        )


def measure_ray(clients: int, rounds: int, work: Path) -> dict[str, Any]:
    """``fedclient simulate --ray`` on a two-node Ray cluster on this machine (one CPU per node, loopback)."""
    # Loopback addresses for every node and driver (see tests/e2e/test_simulate_ray.py); no usage report.
    ray_env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    os.environ.update(ray_env)
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 100 * 1024 * 1024}
    work.mkdir(parents=True)
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        out = work / "simulate.json"
        cmd = [str(FEDCLIENT), "simulate", "--ray", cluster.address, "--clients", str(clients)]
        cmd += [
            "--rounds",
            str(rounds),
            "--package",
            str(PACKAGE),
            "--json",
            str(out),
            "--log-level",
            "ERROR",
        ]
        t0 = time.monotonic()
        subprocess.run(cmd, env={**os.environ, "TINY_MODEL_KIB": "4"}, stdout=subprocess.DEVNULL, check=True)
        wall = time.monotonic() - t0
    finally:
        cluster.shutdown()
    got = json.loads(out.read_text())
    return {
        "clients": clients,
        "wall_s": wall,
        "join_s": got["join_seconds"],
        "nodes": [n["clients"] for n in got["nodes"]],
        "actor_rss_idle_mib": [a["rss_idle_mib"] for a in got["actors"]],
        "rss_per_client_kib": got["rss_per_client_kib"],
        "round_s": [r["seconds"] for r in got["rounds"]],
        "updates": [r["updates"] for r in got["rounds"]],
        "latency_s": got["train_latency_s"],
        "overhead_s": got["overhead_s"],
    }


def report_ray(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'clients':>7s} {'per node':>10s} {'join s':>7s} {'actor RSS idle':>15s} {'KiB/client':>10s} "
        f"{'round s':>8s} {'train p50':>10s} {'p90':>8s} {'p99':>8s} {'wall s':>7s}"
    )
    for r in rows:
        lat = r["latency_s"]
        print(
            f"{r['clients']:7d} {'+'.join(map(str, r['nodes'])):>10s} {r['join_s']:7.1f} "
            f"{' + '.join(f'{m:.0f}' for m in r['actor_rss_idle_mib']):>13s} M "
            f"{r['rss_per_client_kib']:10.0f} {statistics.median(r['round_s']):8.2f} "
            f"{lat.get('p50', 0) * 1000:8.0f}ms {lat.get('p90', 0) * 1000:6.0f}ms "
            f"{lat.get('p99', 0) * 1000:6.0f}ms {r['wall_s']:7.1f}"
        )


def main_ray(counts: list[int], rounds: int, json_out: Path | None) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="fedclient-scale-ray-") as tmp:
        for n in counts:
            rows.append(measure_ray(n, rounds, Path(tmp) / f"n{n}"))
            print(f"  N={n}: rounds {rows[-1]['round_s']}, updates {rows[-1]['updates']}", flush=True)
    print(
        f"\nsimulate --ray: a two-node Ray cluster (1 CPU each) on this machine, {os.cpu_count()} CPUs, "
        "the sandbox federation in the driver, examples/tiny (4 KiB model)"
    )
    report_ray(rows)
    if json_out:
        json_out.write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default="10,100,300,1000", help="comma-separated values of N")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="N = 10, 100")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--ray", help="comma-separated N: simulate --ray on two Ray nodes instead")
    parser.add_argument(
        "--one-process", action="store_true", help="simulate with its own sandbox (e.g. --clients 1000,5000)"
    )
    args = parser.parse_args()
    if args.ray:
        main_ray([int(n) for n in args.ray.split(",") if n], args.rounds, args.json)
        return
    if args.serve:
        asyncio.run(_serve(int(args.serve[0]), int(args.serve[1]), Path(args.serve[2])))
        return
    if args.one_process:
        with tempfile.TemporaryDirectory(prefix="fedclient-scale-") as tmp:
            counts = [int(n) for n in args.clients.split(",") if n]
            rows = [one_process(n, args.rounds, Path(tmp) / f"n{n}") for n in counts]
        report_one_process(rows)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return
    counts = [10, 100] if args.quick else [int(n) for n in args.clients.split(",") if n]
    rows = []
    with tempfile.TemporaryDirectory(prefix="fedclient-scale-") as tmp:
        for n in counts:
            row = measure(n, args.rounds, Path(tmp) / f"n{n}")
            rows.append(row)
            print(
                f"  N={n}: rounds {row['round_s']}, client CPU {row['client_cpu_pct']:.0f}%, "
                f"server CPU {row['server_cpu_pct']:.0f}%",
                flush=True,
            )
    print(
        f"\nsandbox combiner and simulate in two processes, {os.cpu_count()} CPUs, "
        "examples/tiny (4 KiB model)"
    )
    report(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
