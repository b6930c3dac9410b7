"""The demo compute package shipped with fedclient: what `fedclient sandbox` trains without --package.

It is examples/digits of the source tree, installed as the data package ``fedclient.demo``
(pyproject.toml maps it), so a pip user has it too. Its dependencies are the ``sandbox``
extra's.
"""

from __future__ import annotations

from pathlib import Path

from ..domain.errors import ConfigError

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # fedclient/ (src/ in a checkout)


def demo_package() -> Path:
    """The demo package's directory: the installed copy, or a checkout's examples/digits."""
    for where in (_PACKAGE_ROOT / "demo", _PACKAGE_ROOT.parent / "examples" / "digits"):
        if (where / "fedn.yaml").is_file():
            return where
    raise ConfigError("this installation of fedclient has no demo package: give --package DIR")
