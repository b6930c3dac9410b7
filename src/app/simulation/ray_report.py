"""What `fedclient simulate --ray` gathered: per actor, per node, per round, and every task's latency."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .task_timing import TaskTime, TaskTimes

if TYPE_CHECKING:
    from ...adapters.sandbox.federation import RoundResult


@dataclass
class ActorRun:
    """One actor: where it ran, its clients, its memory, and what it reported at the end."""

    index: int
    clients: int
    client_names: list[str]
    node_id: str = ""
    pid: int = 0
    scratch: str = ""  # its scratch dir on its node (removed when it closes; swept if it was killed)
    rss_before_mib: float = 0.0  # the worker process before its clients were built
    rss_idle_mib: float = 0.0  # with its clients connected and idle
    rss_peak_mib: float = 0.0
    connected: int = 0
    abandoned: int = 0
    tasks: list[TaskTime] = field(default_factory=list)
    lost: bool = False  # died (its node or its process) before it reported
    error: str = ""

    def record(self, report: dict[str, Any]) -> None:
        self.tasks = [
            TaskTime(kind, latency, trainer, calls) for kind, latency, trainer, calls in report["tasks"]
        ]
        self.connected = report["connected"]
        self.abandoned = report["abandoned"]
        self.rss_peak_mib = report["rss_peak_mib"]

    def as_json(self) -> dict[str, Any]:
        return {
            "actor": self.index,
            "node_id": self.node_id,
            "pid": self.pid,
            "scratch": self.scratch,
            "clients": self.clients,
            "rss_before_mib": round(self.rss_before_mib, 1),
            "rss_idle_mib": round(self.rss_idle_mib, 1),
            "rss_peak_mib": round(self.rss_peak_mib, 1),
            "tasks": len(self.tasks),
            "lost": self.lost,
        }


@dataclass
class RayReport:
    clients: int
    actors: int
    members: list[ActorRun]
    join_seconds: float = 0.0
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def times(self) -> TaskTimes:
        return TaskTimes(done=[t for m in self.members for t in m.tasks])

    def nodes(self) -> dict[str, int]:
        """Clients per Ray node id, in the order the nodes first appear."""
        counts: Counter[str] = Counter()
        for m in self.members:
            counts[m.node_id] += m.clients
        return dict(counts)

    @property
    def rss_per_client_kib(self) -> float:
        """What the clients added to their actors' RSS, per client (idle, every client connected)."""
        added = sum(m.rss_idle_mib - m.rss_before_mib for m in self.members if m.rss_idle_mib)
        counted = sum(m.clients for m in self.members if m.rss_idle_mib)
        return added * 1024 / max(counted, 1)

    @property
    def lost_clients(self) -> int:
        return sum(m.clients for m in self.members if m.lost)

    @property
    def abandoned(self) -> int:
        return sum(m.abandoned for m in self.members)

    def as_json(self) -> dict[str, Any]:
        times = self.times
        return {
            "clients": self.clients,
            "runtime": "ray",
            "connected": sum(m.connected for m in self.members),
            "join_seconds": self.join_seconds,
            "lost_clients": self.lost_clients,
            "rss_per_client_kib": round(self.rss_per_client_kib, 1),
            "nodes": [
                {"node_id": node, "clients": n, "actors": sum(m.node_id == node for m in self.members)}
                for node, n in self.nodes().items()
            ],
            "actors": [m.as_json() for m in self.members],
            "tasks": len(times.done),
            "latency_s": times.percentiles("latency"),
            "overhead_s": times.percentiles("overhead"),
            "train_latency_s": times.percentiles("latency", "train"),
            "rounds": [r.as_json() for r in self.rounds],
        }

    def format(self) -> str:
        def ms(values: dict[str, float]) -> str:
            return "  ".join(f"{k} {v * 1000:.1f} ms" for k, v in values.items()) if values else "no tasks"

        lines = []
        if self.rounds:
            from ..sandbox import format_table

            lines += [format_table(self.rounds), ""]
        nodes = self.nodes()
        lines.append(f"clients {self.clients} on Ray: {self.actors} actor(s) on {len(nodes)} node(s)")
        for node, n in nodes.items():
            mine = [m for m in self.members if m.node_id == node]
            rss = ", ".join(f"{m.rss_idle_mib:.0f}" for m in mine)
            gone = " (lost)" if any(m.lost for m in mine) else ""
            lines.append(f"  node {node[:12]}: {n} clients{gone}; actor RSS idle {rss} MiB")
        lines.append(f"  {self.rss_per_client_kib:.0f} KiB per client (actor RSS idle minus before)")
        if self.lost_clients:
            lines.append(f"lost {self.lost_clients} client(s) with their node or actor")
        times = self.times
        lines += [
            f"tasks {len(times.done)}: latency {ms(times.percentiles('latency'))}",
            f"  overhead (latency minus callbacks) {ms(times.percentiles('overhead'))}",
        ]
        return "\n".join(lines)
