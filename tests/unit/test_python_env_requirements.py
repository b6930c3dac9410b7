"""python_env installs only the packages it lists: no pip options, no smuggled extra lines."""

from __future__ import annotations

import pytest
from fedclient.domain.errors import PackageError
from fedclient.domain.package_env import parse_python_env


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("--index-url=http://evil.example/simple", "is a pip option"),
        ("--extra-index-url http://evil.example/simple", "is a pip option"),
        ("-r /etc/other-requirements.txt", "is a pip option"),
        ("-e ../../outside", "is a pip option"),
        ("  --trusted-host evil.example", "is a pip option"),
        ("numpy\n--index-url http://evil.example", "line break"),
        ("numpy\x1b[2J", "control character"),
    ],
)
def test_requirements_that_change_how_pip_installs_are_refused(entry: str, message: str) -> None:
    with pytest.raises(PackageError, match=message):
        parse_python_env({"dependencies": ["numpy", entry]}, "python_env.yaml")


def test_plain_requirements_pass() -> None:
    spec = parse_python_env(
        {
            "build_dependencies": ["pip>=23"],
            "dependencies": ["numpy==1.26.4", "torch[cpu]>=2; python_version>'3.9'"],
        },
        "python_env.yaml",
    )
    assert spec.dependencies == ("numpy==1.26.4", "torch[cpu]>=2; python_version>'3.9'")
