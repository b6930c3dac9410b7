"""`fedclient simulate --ray`: clients as Ray actors on a real two-node Ray cluster on loopback.

The cluster is Ray's own multi-node-on-one-machine test cluster (``ray.cluster_utils.Cluster``):
a head and one more node, each a raylet with one CPU, started once for this module and
stopped by it. ``simulate`` runs as a child process that connects to it as a driver.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.child import Child
from tests.e2e.conftest import ROOT, fedclient_exe

pytestmark = pytest.mark.ray

TINY = ROOT / "examples" / "tiny"
# Ray resolves "127.0.0.1" to the machine's outward address unless it takes itself for a
# single-machine install (the switch it uses on macOS and Windows): so every node, the
# drivers and the sandbox federation stay on loopback.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}
LOST_LINE = "simulated client(s) on Ray node"

# Training waits while the hold file exists (up to 60 s), so a test acts mid-round.
HELD_CALLBACKS = """
import time
from pathlib import Path

import tiny

HOLD, STARTED = Path({hold!r}), Path({started!r})


def train(model, settings):
    STARTED.touch()
    deadline = time.monotonic() + 60
    while HOLD.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return tiny.to_bytes(tiny.step(tiny.load(model))), tiny.metadata()


def validate(model):
    return tiny.metrics(tiny.load(model))
"""


class RayCluster:
    def __init__(self) -> None:
        os.environ.update(RAY_ENV)  # before Ray reads its constants
        import ray
        from ray.cluster_utils import Cluster

        self.ray = ray
        self.cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        self.other = self.cluster.add_node(**NODE)
        ray.init(address=self.cluster.address)
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def node_ids(self) -> set[str]:
        return {self.cluster.head_node.node_id, self.other.node_id}

    def ensure_two_nodes(self) -> None:
        """A test that removed the other node leaves a fresh one for the next."""
        if self.other not in self.cluster.worker_nodes:
            self.other = self.cluster.add_node(**NODE)
            self.cluster.wait_for_nodes()

    def actors_not_dead(self) -> list[dict[str, Any]]:
        """Every actor the cluster's control store (GCS) does not have as DEAD."""
        table = self.ray._private.state.actors()
        return [a for a in table.values() if a["State"] != "DEAD"]

    def stop(self) -> None:
        self.ray.shutdown()
        self.cluster.shutdown()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    saved = {key: os.environ.get(key) for key in RAY_ENV}
    t0 = time.monotonic()
    cluster = RayCluster()
    print(f"Ray cluster (2 nodes) up in {time.monotonic() - t0:.1f} s")
    try:
        yield cluster
    finally:
        cluster.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def cluster(ray_cluster: RayCluster) -> RayCluster:
    ray_cluster.ensure_two_nodes()
    return ray_cluster


def _held_package(tmp_path: Path) -> tuple[Path, Path, Path]:
    package = tmp_path / "held"
    shutil.copytree(TINY, package, ignore=shutil.ignore_patterns("__pycache__"))
    hold, started = tmp_path / "hold", tmp_path / "started"
    hold.touch()
    (package / "callbacks.py").write_text(HELD_CALLBACKS.format(hold=str(hold), started=str(started)))
    return package, hold, started


async def _simulate(tmp_path: Path, address: str, package: Path, *extra: str) -> Child:
    """simulate --ray with 4 clients; its temporary directories go to tmp_path/tmp."""
    argv = ["simulate", "--ray", address, "--clients", "4", "--package", str(package)]
    argv += ["--json", str(tmp_path / "sim.json"), *extra]
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, **RAY_ENV, "TMPDIR": str(tmp_path / "tmp")}
    return await Child.start(fedclient_exe(), *argv, cwd=tmp_path, env=env)


async def _wait_for(path: Path, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline and child.returncode is None, child.tail()
        await asyncio.sleep(0.1)


async def test_clients_run_on_both_nodes_and_every_update_is_aggregated(
    cluster: RayCluster, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    child = await _simulate(tmp_path, cluster.address, TINY, "--rounds", "2")
    code = await child.wait(180)
    assert code == 0, child.tail()
    report = json.loads((tmp_path / "sim.json").read_text())
    assert {n["node_id"] for n in report["nodes"]} == cluster.node_ids()
    assert sorted(n["clients"] for n in report["nodes"]) == [2, 2]
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert all(r["updates"] == 4 and r["validations"] == 4 for r in report["rounds"])
    assert [round(r["metrics"]["mean_weight"], 4) for r in report["rounds"]] == [0.01, 0.02]
    assert report["tasks"] == 4 * 2 * 2  # every client's train and validate tasks, gathered from both actors
    assert 0 < report["latency_s"]["p50"] <= report["latency_s"]["p99"]
    assert len(report["actors"]) == 2 and all(a["rss_idle_mib"] > 0 for a in report["actors"])
    assert report["lost_clients"] == 0 and LOST_LINE not in child.stderr
    assert "Traceback" not in child.stderr
    print(f"simulate --ray, 4 clients on 2 nodes, 2 rounds: {time.monotonic() - t0:.1f} s")


async def test_ctrl_c_stops_every_actor(cluster: RayCluster, tmp_path: Path) -> None:
    package, hold, started = _held_package(tmp_path)
    child = await _simulate(tmp_path, cluster.address, package, "--rounds", "2")
    try:
        await _wait_for(started, child, 120)  # callbacks are running: mid-round
        signalled = time.monotonic()
        code = await child.stop(signal.SIGINT, 30)
        took = time.monotonic() - signalled
    finally:
        await child.kill()
        hold.unlink()
    assert code == 0, child.tail()
    assert took < 10, f"simulate --ray took {took:.1f} s to stop\n{child.tail()}"
    assert "stopping on SIGINT: stopping the Ray actors of 4 simulated clients" in child.stderr
    assert "Traceback" not in child.stderr
    assert list((tmp_path / "tmp").iterdir()) == [], "the driver's temporary work dir is removed"
    report = json.loads((tmp_path / "sim.json").read_text())
    pids = [a["pid"] for a in report["actors"]]
    assert len(pids) == 2 and all(pids)
    scratches = [Path(a["scratch"]) for a in report["actors"]]
    assert all(s.name.startswith("fedclient-ray-") for s in scratches), scratches
    assert not [s for s in scratches if s.exists()], "each actor removed its scratch dir before the kill"
    deadline = time.monotonic() + 10
    while (alive := cluster.actors_not_dead()) or any(_exists(pid) for pid in pids):
        assert time.monotonic() < deadline, f"actors left alive: {alive}, pids {pids}"
        await asyncio.sleep(0.2)
    assert not [a for a in cluster.ray.util.list_named_actors(all_namespaces=True) if "sim-" in a["name"]]
    print(f"simulate --ray stopped {took:.1f} s after SIGINT")


async def test_a_node_lost_mid_round_the_round_completes_with_the_rest(
    cluster: RayCluster, tmp_path: Path
) -> None:
    package, hold, started = _held_package(tmp_path)
    lost_node = cluster.other.node_id
    child = await _simulate(tmp_path, cluster.address, package, "--rounds", "2", "--round-timeout", "60")
    try:
        await _wait_for(started, child, 120)
        await asyncio.to_thread(cluster.cluster.remove_node, cluster.other)
        hold.unlink()  # the head node's clients finish their training now
        code = await child.wait(120)
    finally:
        await child.kill()
    assert code == 0, child.tail()
    report = json.loads((tmp_path / "sim.json").read_text())
    rounds = report["rounds"]
    assert [r["updates"] for r in rounds] == [2, 2], child.tail()  # the head node's two clients
    assert rounds[0]["seconds"] < 60, "the round ended without waiting its timeout for the lost clients"
    lines = [line for line in child.stderr.splitlines() if LOST_LINE in line]
    assert len(lines) == 1, child.tail()
    assert f"lost 2 {LOST_LINE} {lost_node}: the node died" in lines[0]
    assert report["lost_clients"] == 2
    assert [n["clients"] for n in report["nodes"] if n["node_id"] == lost_node] == [2]
    print(f"node lost mid-round: round 1 took {rounds[0]['seconds']:.1f} s; {lines[0]}")


def test_ray_without_the_extra_is_one_clear_error(tmp_path: Path) -> None:
    hide_ray = "import sys; sys.modules['ray'] = None; from fedclient.app.cli import main; sys.exit(main())"
    argv = [sys.executable, "-c", hide_ray, "simulate", "--ray", "--clients", "2", "--package", str(TINY)]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "pip install 'fedclient[ray]'" in line
    assert "Traceback" not in result.stderr


def test_an_address_where_no_ray_cluster_listens_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    argv = ["simulate", "--ray", address, "--clients", "2", "--package", str(TINY)]
    t0 = time.monotonic()
    result = subprocess.run(
        [fedclient_exe(), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"--ray {address}: no Ray cluster answers there" in line
    assert time.monotonic() - t0 < 30


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
