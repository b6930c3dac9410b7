"""The distribution installs exactly one import root, `fedclient`, and nothing shadows it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def test_every_package_under_src_is_listed_in_pyproject() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    on_disk = {
        ".".join(("fedclient", *init.parent.relative_to(SRC).parts))
        for init in SRC.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    # Packages mapped from elsewhere: the demo compute package is examples/digits.
    mapped = {name: ROOT / where for name, where in setuptools["package-dir"].items() if name != "fedclient"}
    assert mapped == {"fedclient.demo": ROOT / "examples" / "digits"}
    assert all((where / "fedn.yaml").is_file() for where in mapped.values())
    assert listed == on_disk | set(mapped)


def test_a_user_script_with_app_domain_adapters_of_its_own_does_not_shadow_fedclient(tmp_path: Path) -> None:
    for name in ("app", "domain", "adapters"):
        (tmp_path / f"{name}.py").write_text("raise ImportError('the user module was imported')\n")
    # Run from the user's directory, as `python script.py` would: that directory is first on sys.path.
    probe = (
        "import fedclient.app.cli, fedclient.domain.lifecycle, fedclient.testing.fakes\n"
        "print(fedclient.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == SRC


def test_no_top_level_app_domain_or_adapters_is_installed(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u; print([n for n in ('app','domain','adapters') if u.find_spec(n)])",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
