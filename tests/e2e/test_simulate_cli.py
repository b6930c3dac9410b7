"""`fedclient simulate`: many clients in one process train rounds with in-process callbacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.e2e.conftest import ROOT, run_cli

TINY = ROOT / "examples" / "tiny"


def test_simulated_clients_train_rounds_and_report_latencies(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    result = run_cli(
        "simulate",
        "--clients",
        "6",
        "--rounds",
        "2",
        "--package",
        str(TINY),
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["clients"] == 6 and report["connected"] >= 6
    rounds = report["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["updates"] == 6 and r["validations"] == 6 for r in rounds)
    # Each round adds 0.01 to every weight (callbacks.py): the federation really trained.
    assert [round(r["metrics"]["mean_weight"], 4) for r in rounds] == [0.01, 0.02]
    assert report["tasks"] == 6 * 2 * 2  # a training and a validation task per client and round
    assert 0 < report["latency_s"]["p50"] <= report["latency_s"]["p99"]
    assert report["overhead_s"]["p50"] <= report["latency_s"]["p50"]
    assert report["rss_idle_mib"] >= report["rss_before_mib"] > 0
    assert "latency p50" in result.stdout and "KiB per client" in result.stdout


def test_a_package_without_callbacks_is_one_clear_error(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    shutil.copytree(TINY, package)
    (package / "callbacks.py").unlink()
    result = run_cli("simulate", "--clients", "2", "--package", str(package), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no callbacks.py" in result.stderr
