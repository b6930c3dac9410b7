"""Simulated clients' warnings: counted into one line per period, and the run stopped when it cannot go on."""

from __future__ import annotations

import asyncio
import logging

import pytest
from fedclient.app.simulation.overload import OverloadReport, aggregated_client_logs
from fedclient.domain.observe import log_scope


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def handler() -> _Lines:
    root = logging.getLogger()
    lines = _Lines()
    root.addHandler(lines)
    yield lines
    root.removeHandler(lines)


def _beats_missed(clients: range, logger: logging.Logger) -> None:
    for index in clients:
        with log_scope(client_id=f"sim-abc-{index}"):
            logger.warning("heartbeat %d/%d missed: %s", 1, 3, "DEADLINE_EXCEEDED")


def test_client_warnings_become_one_line_and_others_pass(handler: _Lines) -> None:
    report = OverloadReport(100, asyncio.Event())
    lifecycle = logging.getLogger("fedclient.lifecycle")
    with aggregated_client_logs(report):
        _beats_missed(range(5), lifecycle)
        _beats_missed(range(3), lifecycle)
        logging.getLogger("fedclient.sandbox").warning("not a simulated client's line")
        assert handler.lines == ["not a simulated client's line"]
        report.flush()
    line = "100 simulated clients in the last 5 s: 8 heartbeats missed, DEADLINE_EXCEEDED (5 clients)"
    assert handler.lines[1:] == [line]
    assert report.swallowed == 8 and report.lines == 1 and report.failed is None
    assert not report.stop.is_set()


def test_clients_losing_their_connection_stop_the_run(handler: _Lines) -> None:
    stop = asyncio.Event()
    report = OverloadReport(20, stop)
    lifecycle = logging.getLogger("fedclient.lifecycle")
    with aggregated_client_logs(report):
        for index in range(2):  # 10 % of the clients
            with log_scope(client_id=f"sim-abc-{index}"):
                lifecycle.warning("connection to %s lost: %s", "127.0.0.1:1", "3 heartbeats in a row missed")
        report.flush()
    assert stop.is_set()
    assert report.failed is not None and "2 of 20 clients lost their connection" in report.failed
    # The loop kept up (no lag measured): the limit is the server's, and the line says so.
    cannot = "simulate cannot go on: the combiner does not keep up with 20 clients"
    assert any(line.startswith(cannot) and "add combiners" in line for line in handler.lines)


def test_a_process_behind_is_told_to_run_fewer_clients(handler: _Lines) -> None:
    report = OverloadReport(20, asyncio.Event())
    report.lag = 31.0  # behind past a call's deadline
    with aggregated_client_logs(report):
        with log_scope(client_id="sim-abc-0"):
            logging.getLogger("fedclient.lifecycle").warning("heartbeat %d/%d missed: %s", 1, 3, "x")
        report.flush()
    assert report.stop.is_set()
    assert report.failed is not None and report.failed.startswith("this process cannot keep 20 clients going")
    assert "the event loop is 31 s behind" in report.failed and "--clients" in report.failed


def test_the_stop_is_one_line_not_one_per_client(handler: _Lines) -> None:
    report = OverloadReport(50, asyncio.Event())
    lifecycle = logging.getLogger("fedclient.lifecycle")
    with aggregated_client_logs(report):
        for index in range(50):
            with log_scope(client_id=f"sim-abc-{index}"):
                lifecycle.warning("the running task did not finish within %.0f s; cancelling it", 5.0)
    assert handler.lines == [
        "50 simulated clients at the stop: 50 tasks cut short by the stop (grace over) (50 clients)"
    ]


def test_a_line_naming_a_model_is_one_label_for_every_model(handler: _Lines) -> None:
    report = OverloadReport(10, asyncio.Event())
    tasks = logging.getLogger("fedclient.tasks")
    models = ["3f2a9c1e-0b4d-4e5f-8a6b-7c8d9e0f1a2b", "b8e1f00d-1234-4abc-9def-0123456789ab", "73a7606a"]
    with aggregated_client_logs(report):
        for index, model in enumerate(models):
            with log_scope(client_id=f"sim-abc-{index}"):
                tasks.warning("train task for model %s failed: the callback raised", model)
        report.flush()
    line = "10 simulated clients in the last 5 s: 3 train task for model <id> failed (3 clients)"
    assert handler.lines == [line]
