"""`fedclient package check|build`: look at a compute package the way the client will."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from ..adapters.package_archive import TarPackageUnpacker, build_package
from ..domain.package import KNOWN_ENTRY_POINTS


def add_parser(sub: Any) -> None:
    p = sub.add_parser("package", help="check or build a FEDn compute package")
    actions = p.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="validate fedn.yaml (a directory or an archive)")
    check.add_argument("path", type=Path)
    build = actions.add_parser("build", help="write a FEDn-style .tgz (fedn.yaml at the root)")
    build.add_argument("path", type=Path, help="package directory")
    build.add_argument("-o", "--output", type=Path, default=Path("package.tgz"))


def run_package(args: argparse.Namespace) -> int:
    unpacker = TarPackageUnpacker()
    if args.action == "build":
        out = build_package(args.path, args.output)
        print(f"{out}  sha256 {unpacker.sha256(out)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="fedclient-check-") as tmp:
        root = args.path
        if root.is_file():
            root = unpacker.unpack(root, Path(tmp) / "package")
        manifest = unpacker.load_manifest(root)
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
    print("ok")
    return 0
