"""`fedclient sandbox`: a whole local federation from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import run_cli


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
    assert rounds[2]["metrics"]["accuracy"] > rounds[0]["metrics"]["accuracy"]
    # the table on stdout names every round, then the final summary follows
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["round", "global"]
    assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "3"]
    assert lines[4].startswith("summary: 3 rounds with 2 clients in ")
    assert any(line.strip().startswith("accuracy: ") and "after round 3" in line for line in lines)
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


def test_package_check_of_a_broken_archive_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not an archive")
    result = run_cli("package", "check", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("fedclient: error: cannot unpack compute package 'bad.tgz'")
