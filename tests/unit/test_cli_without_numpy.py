"""`fedclient run` starts where numpy is not installed (a site venv); only sandbox and simulate need it."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import builtins
real = builtins.__import__
def no_numpy(name, *args, **kwargs):
    if name == "numpy" or name.startswith("numpy."):
        raise ModuleNotFoundError("No module named 'numpy'")
    return real(name, *args, **kwargs)
builtins.__import__ = no_numpy
from fedclient.app.cli import parser
args = parser().parse_args(["run", "--api-url", "localhost"])
print(args.command)
"""


def test_the_cli_parses_run_without_numpy() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "run"
