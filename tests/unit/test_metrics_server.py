"""The metrics endpoint alone: all names fedclient_*, /healthz follows the board, other paths 404."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from fedclient.adapters.observers.prometheus import MetricsServer
from fedclient.domain.model import Task, TaskKind
from fedclient.domain.observe import Link, TransferKind
from fedclient.domain.status import StatusBoard


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_metrics_and_health_follow_the_board() -> None:
    board = StatusBoard(now=time.monotonic)
    server = MetricsServer(
        board, "127.0.0.1", 0, stale_after=30, labels={"name": "n", "client_id": "c"}
    ).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        code, body = get(f"{base}/healthz")
        assert code == 503 and json.loads(body)["connected"] is False
        board.link(Link.CONNECTED, "comb:12080")
        task = Task(TaskKind.VALIDATE, "m1", "s1")
        board.task_started(task)
        transfer = board.transfer(TransferKind.MODEL_DOWNLOAD, "m1", None)
        transfer.advance(1000)
        transfer.finish(True)
        board.task_finished(task, ok=False)
        code, body = get(f"{base}/healthz")
        assert code == 200 and json.loads(body)["combiner"] == "comb:12080"
        code, text = get(f"{base}/metrics")
        assert code == 200
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert samples and all(line.startswith("fedclient_") for line in samples)
        assert 'fedclient_tasks_total{kind="validate",outcome="failed"} 1.0' in samples
        assert 'fedclient_transfer_bytes_total{kind="model_download"} 1000.0' in samples
        assert 'fedclient_combiner{combiner="comb:12080"} 1.0' in samples
        assert "fedclient_connected 1.0" in samples
        assert get(f"{base}/other")[0] == 404
    finally:
        server.stop()


def test_a_port_in_use_is_a_config_error() -> None:
    import pytest
    from fedclient.domain.errors import ConfigError

    first = MetricsServer(StatusBoard(now=time.monotonic), "127.0.0.1", 0, 30, {}).start()
    try:
        with pytest.raises(ConfigError, match=rf"cannot listen on 127.0.0.1:{first.port}: .*--metrics-port"):
            MetricsServer(StatusBoard(now=time.monotonic), "127.0.0.1", first.port, 30, {})
    finally:
        first.stop()


def test_the_privacy_budget_is_exported_only_when_the_policy_has_a_privacy_section() -> None:
    from fedclient.domain.privacy import PrivacySpent
    from fedclient.domain.status import status_line

    board = StatusBoard(now=time.monotonic)
    server = MetricsServer(board, "127.0.0.1", 0, stale_after=30, labels={}).start()
    try:
        assert "fedclient_privacy" not in get(f"http://127.0.0.1:{server.port}/metrics")[1]
        board.privacy_spent(PrivacySpent(12.5, 100.0, 1e-5, 3))
        samples = get(f"http://127.0.0.1:{server.port}/metrics")[1].splitlines()
        assert "fedclient_privacy_epsilon_spent 12.5" in samples
        assert "fedclient_privacy_epsilon_budget 100.0" in samples
        assert "fedclient_privacy_rounds_total 3.0" in samples
        assert status_line(board).endswith("| ε 12.5/100")
    finally:
        server.stop()
