"""python_env build and reuse times, with venv + pip and (when found) uv.

    python bench/env_build.py [--env tests/interop/fedn_examples/load-test/client/python_env.yaml]
                              [--uv PATH] [--builds 2]

For each tool it builds the env ``--builds`` times, each into a fresh cache (the first
build may also fill pip's or uv's download cache; later ones show a warm cache), then
asks for it once more from the last cache: that is what every later start costs.
Uses the real adapter (``PackageEnvs``), so the figures are what ``fedclient run`` pays.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from fedclient.adapters.trainers.package_env import PackageEnvs

DEFAULT_ENV = (
    Path(__file__).resolve().parents[1] / "tests/interop/fedn_examples/load-test/client/python_env.yaml"
)


async def measure(env_file: Path, uv: str, builds: int) -> tuple[list[float], float, float]:
    with tempfile.TemporaryDirectory(prefix="fedclient-envbench-") as tmp:
        package = Path(tmp) / "package"
        package.mkdir()
        shutil.copy(env_file, package / "python_env.yaml")
        times, size = [], 0.0
        envs = None
        for number in range(builds):
            envs = PackageEnvs(Path(tmp) / f"envs-{number}", uv=uv)
            started = time.monotonic()
            built = await envs.ensure(package, "python_env.yaml")
            times.append(time.monotonic() - started)
            assert not built.reused
            size = sum(p.stat().st_size for p in built.path.resolve().rglob("*") if p.is_file()) / 2**20
        assert envs is not None
        started = time.monotonic()
        again = await envs.ensure(package, "python_env.yaml")
        reuse = time.monotonic() - started
        assert again.reused
        return times, reuse, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=Path, default=DEFAULT_ENV, help="a python_env YAML file")
    parser.add_argument("--uv", default=shutil.which("uv") or "", help="uv binary (default: on PATH)")
    parser.add_argument("--builds", type=int, default=2)
    args = parser.parse_args()
    tools = [("venv+pip", "")] + ([("uv", args.uv)] if args.uv else [])
    print(f"env file: {args.env}")
    print(f"{'tool':10s} {'builds (s)':24s} {'reuse (s)':10s} {'size (MiB)':10s}")
    for name, uv in tools:
        times, reuse, size = asyncio.run(measure(args.env, uv, args.builds))
        shown = ", ".join(f"{t:.1f}" for t in times)
        print(f"{name:10s} {shown:24s} {reuse:<10.3f} {size:<10.0f}")
    if not args.uv:
        print("uv: not found on PATH (pass --uv PATH to compare)")


if __name__ == "__main__":
    main()
