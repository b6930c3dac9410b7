"""`fedclient package check|build`: look at a compute package the way the client will.

``check`` runs every check the client runs before it executes anything: the archive
rules and caps, the checksum pin, the site policy's allowlist, the fedn.yaml schema,
and that the files the manifest names are inside the package. Each problem found is
named on its own line; the exit code is 0 when there are none, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..adapters.package_archive import TarPackageUnpacker
from ..adapters.package_build import build_package
from ..adapters.yaml_errors import yaml_problem
from ..domain.errors import FedClientError
from ..domain.package import KNOWN_ENTRY_POINTS, Manifest, normalize_checksum
from ..domain.package_env import parse_python_env
from . import policy_cmd
from .policy import site_policy
from .settings_load import load_settings
from .user_paths import existing, package_dir


def add_parser(sub: Any) -> None:
    p = sub.add_parser("package", help="check or build a FEDn compute package")
    actions = p.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="run every check the client runs (a directory or an archive)")
    check.add_argument("path", type=Path)
    check.add_argument("--package-checksum", help="expected SHA-256 of the package")
    check.add_argument("-in", "--init", type=Path, help="FEDn-style client.yaml with settings")
    policy_cmd.add_policy_flags(check)
    build = actions.add_parser("build", help="write a FEDn-style .tgz (fedn.yaml at the root)")
    build.add_argument("path", type=Path, help="package directory")
    build.add_argument("-o", "--output", type=Path, default=Path("package.tgz"))


def run_package(args: argparse.Namespace) -> int:
    if args.action == "build":
        out = build_package(package_dir(args.path), args.output)
        print(f"{out}  sha256 {TarPackageUnpacker().sha256(out)}")
        return 0
    return check_package(args)


def check_package(args: argparse.Namespace) -> int:
    settings = load_settings(
        {**policy_cmd.policy_values(args), "package_checksum": args.package_checksum}, args.init
    )
    policy = site_policy(settings)
    unpacker = TarPackageUnpacker(policy.archive)
    problems: list[str] = []
    manifest: Manifest | None = None
    with tempfile.TemporaryDirectory(prefix="fedclient-check-") as tmp:
        archive = existing(args.path, "any")
        if archive.is_dir():  # judged as the archive `package build` would make of it
            archive = build_package(archive, Path(tmp) / "package.tgz")
        sha = unpacker.sha256(archive)
        print(f"sha256 {sha}")
        pin = normalize_checksum(settings.package_checksum)
        if pin and pin != sha:
            problems.append(f"checksum: expected {pin} (--package-checksum), got {sha}")
        if policy.allowed_packages and sha not in policy.allowed_packages:
            problems.append(
                f"site policy: sha256 {sha} is not in the allowlist of {len(policy.allowed_packages)} "
                f"package(s) ({policy.source}); the client would refuse it before unpacking"
            )
        try:
            root = unpacker.unpack(archive, Path(tmp) / "package")
            manifest = unpacker.load_manifest(root)
            problems += _manifest_problems(root, manifest)
        except FedClientError as exc:
            problems.append(str(exc))
    if manifest is not None:
        for name, argv in manifest.entry_points.items():
            note = "" if name in KNOWN_ENTRY_POINTS else "  (not an entry point FEDn knows)"
            print(f"{name:9s} {' '.join(argv)}{note}")
        missing = [n for n in ("train", "validate") if not manifest.has(n)]
        if missing:
            print(f"note: no {' or '.join(missing)} entry point; such tasks will be reported as failed")
        if manifest.python_env:
            print(
                f"note: python_env {manifest.python_env} is built (and cached) at start; "
                "--no-managed-env runs the package with PATH's python instead"
            )
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"{len(problems)} problem(s) found")
        return 1
    print("ok")
    return 0


def _manifest_problems(root: Path, manifest: Manifest) -> list[str]:
    problems: list[str] = []
    if manifest.python_env:
        env = root / manifest.python_env
        inside = os.path.realpath(env).startswith(os.path.realpath(root) + os.sep)
        if not inside:
            problems.append(f"python_env {manifest.python_env!r} resolves outside the package")
        elif not env.is_file():
            problems.append(f"python_env {manifest.python_env!r} names a file the package does not have")
        else:
            try:
                text = env.read_text(encoding="utf-8")
                parse_python_env(yaml.safe_load(text), manifest.python_env)
            except yaml.YAMLError as exc:
                problems.append(yaml_problem(manifest.python_env, exc, text))
            except (UnicodeDecodeError, RecursionError) as exc:
                problems.append(f"python_env {manifest.python_env!r} is not valid YAML: {exc}")
            except FedClientError as exc:
                problems.append(str(exc))
    return problems
