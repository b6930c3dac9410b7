"""The site policy: strict parsing of the policy file, flags laid over it, and what `policy show` says."""

from __future__ import annotations

from pathlib import Path

import pytest
from fedclient.app.policy import site_policy
from fedclient.app.settings_load import load_settings
from fedclient.domain.errors import ConfigError
from fedclient.domain.policy import ResourceLimits, parse_policy, parse_size

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1024, 1024),
        ("512MiB", 512 * 1024**2),
        ("2 GB", 2 * 1000**3),
        ("1.5g", int(1.5 * 1024**3)),
        ("10k", 10240),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text, "x") == size


@pytest.mark.parametrize("bad", [0, -1, True, "lots", "5 parsecs", None, 1.5])
def test_bad_sizes_are_named(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^where:"):
        parse_size(bad, "where")


def test_a_full_policy_file() -> None:
    policy = parse_policy(
        {
            "allowed_packages": [SHA.upper()],
            "limits": {
                "memory": "1GiB",
                "cpu_seconds": 60,
                "wall_seconds": 90.5,
                "output": "1MiB",
                "open_files": 64,
            },
            "read_only_package": True,
            "archive": {"max_download": "10MiB", "max_members": 50, "max_ratio": 20},
        },
        "site.yaml",
    )
    assert policy.allowed_packages == {SHA}
    assert policy.limits == ResourceLimits(1024**3, 60, 90.5, 1024**2, 64)
    assert policy.read_only_package and policy.archive.max_download_bytes == 10 * 1024**2
    assert policy.archive.max_members == 50 and policy.archive.max_ratio == 20


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"allow": []}, "unknown key 'allow'"),
        ({"allowed_packages": ["nope"]}, "is not a SHA-256"),
        ({"allowed_packages": SHA}, "must be a list"),
        ({"limits": {"memroy": "1GiB"}}, "limits: unknown key 'memroy'"),
        ({"limits": {"cpu_seconds": 1.5}}, "positive whole number"),
        ({"limits": []}, "must be a mapping"),
        ({"read_only_package": "yes"}, "true or false"),
        ({"archive": {"max_ratio": -3}}, "positive number"),
        ([], "a site policy is a mapping"),
    ],
)
def test_policy_mistakes_are_named(doc: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_policy(doc, "site.yaml")


def test_flags_override_the_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(f"allowed_packages: [{SHA}]\nlimits: {{memory: 1GiB, cpu_seconds: 10}}\n")
    other = "cd" * 32
    settings = load_settings({"policy_file": path, "allow_package": [other], "limit_cpu_seconds": 5})
    policy = site_policy(settings)
    assert policy.allowed_packages == {SHA, other}
    assert (policy.limits.memory_bytes, policy.limits.cpu_seconds) == (1024**3, 5)
    text = "\n".join(policy.describe())
    assert str(path) in text and "--limit-cpu-seconds" in text and other in text
    assert "memory:      1 GiB" in text and "cpu time:    5 s" in text
