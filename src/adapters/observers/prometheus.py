"""Site monitoring: Prometheus metrics on /metrics and a health answer on /healthz.

Every figure is read from the StatusBoard at scrape time, so the exporter holds
no state of its own. The server is a small threaded http.server on 127.0.0.1
unless told otherwise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from ...domain.errors import ConfigError
from ...domain.model import TaskKind
from ...domain.observe import TransferKind
from ...domain.state import ClientState
from ...domain.status import StatusBoard


class BoardCollector:
    def __init__(self, board: StatusBoard, labels: dict[str, str]) -> None:
        self._board = board
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        board, snap = self._board, self._board.snapshot
        info = InfoMetricFamily("fedclient", "who this client is")
        info.add_metric([], self._labels)
        yield info
        state = GaugeMetricFamily(
            "fedclient_state", "1 for the ClientState the client is in", labels=["state"]
        )
        for s in ClientState:
            state.add_metric([s.name], 1.0 if snap.state is s else 0.0)
        yield state
        yield GaugeMetricFamily(
            "fedclient_connected", "1 while a combiner connection is up", value=1.0 if snap.connected else 0.0
        )
        combiner = GaugeMetricFamily(
            "fedclient_combiner", "the combiner the client is assigned to (value 1)", labels=["combiner"]
        )
        if snap.combiner:
            combiner.add_metric([snap.combiner], 1.0)
        yield combiner
        tasks = CounterMetricFamily(
            "fedclient_tasks", "tasks handled, by kind and outcome", labels=["kind", "outcome"]
        )
        for kind in TaskKind:
            for outcome in ("ok", "failed"):
                tasks.add_metric([kind.value, outcome], float(snap.tasks[(kind.value, outcome)]))
        yield tasks
        nbytes = CounterMetricFamily(
            "fedclient_transfer_bytes", "bytes moved by finished transfers", labels=["kind"]
        )
        seconds = CounterMetricFamily(
            "fedclient_transfer_seconds", "seconds spent in finished transfers", labels=["kind"]
        )
        count = CounterMetricFamily("fedclient_transfers", "finished transfers", labels=["kind"])
        for kind in TransferKind:
            totals = snap.transfers[kind]
            label = [kind.name.lower()]
            nbytes.add_metric(label, float(totals.nbytes))
            seconds.add_metric(label, totals.seconds)
            count.add_metric(label, float(totals.count))
        yield from (nbytes, seconds, count)
        age = board.heartbeat_age()
        yield GaugeMetricFamily(
            "fedclient_last_heartbeat_age_seconds",
            "seconds since the combiner last answered a heartbeat (-1: never)",
            value=-1.0 if age is None else age,
        )
        yield CounterMetricFamily(
            "fedclient_heartbeats_missed",
            "heartbeats that got no answer",
            value=float(snap.heartbeats_missed),
        )
        yield CounterMetricFamily(
            "fedclient_reconnects", "combiner connections after the first", value=float(snap.reconnects)
        )
        if snap.privacy is not None:  # only with a privacy section in the site policy
            yield GaugeMetricFamily(
                "fedclient_privacy_epsilon_spent",
                "the privacy budget spent: ε over every released update, at the policy's δ (+Inf: no noise)",
                value=snap.privacy.epsilon,
            )
            if snap.privacy.budget is not None:
                yield GaugeMetricFamily(
                    "fedclient_privacy_epsilon_budget",
                    "the site policy's total ε budget",
                    value=snap.privacy.budget,
                )
            yield CounterMetricFamily(
                "fedclient_privacy_rounds",
                "training rounds whose update was released clipped and noised",
                value=float(snap.privacy.rounds),
            )


class MetricsServer:
    """Serves /metrics and /healthz until ``stop()``; ``port`` is the bound port (useful with 0)."""

    def __init__(
        self, board: StatusBoard, host: str, port: int, stale_after: float, labels: dict[str, str]
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(BoardCollector(board, labels))  # type: ignore[arg-type]
        registry, health = self.registry, lambda: board.healthy(stale_after)

        def status() -> dict[str, Any]:
            snap = board.snapshot
            return {
                "connected": snap.connected,
                "combiner": snap.combiner,
                "state": snap.state.name,
                "last_heartbeat_age": board.heartbeat_age(),
            }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = health()
                    body = json.dumps({"healthy": ok, **status()}).encode()
                    self._answer(200 if ok else 503, body, "application/json")
                else:
                    self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _answer(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None  # scrapes every few seconds would drown the client's own log

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"the metrics endpoint cannot listen on {host}:{port}: {exc.strerror or exc}"
                " (choose another --metrics-port)"
            ) from None
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fedclient-metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
