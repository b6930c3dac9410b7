"""Builds (once) and reuses the virtualenv a compute package's ``python_env`` asks for.

FEDn 0.33 makes ``<package>/<name>`` with virtualenv, pip-installs ``build_dependencies``
then ``dependencies``, and reuses that directory whenever it exists, even half built.
Here the env lives in a cache under the work dir, keyed by the env file's bytes and
the Python version (``domain.package_env``), so a restart or a new package version
with the same env file starts at once. The build:

* uses ``uv`` when it is on PATH (much faster), else ``python -m venv`` and pip;
* runs in a fresh ``.build-<key>-<random>`` directory; the env is used only once the
  build finished, wrote its marker and a link ``<name>-<key>`` to it was renamed into
  place. A venv cannot itself be renamed (its scripts hold absolute paths), so the link
  is what moves atomically; an interrupted build is never linked, and is deleted by the
  next build of the same key;
* streams every line of output to the log, after a progress line per step.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import platform
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import yaml

from ...domain.errors import FedClientError, PackageError
from ...domain.package_env import (
    BUILD_MARKER,
    PythonEnvSpec,
    build_dir_name,
    env_cache_key,
    env_link_name,
    is_build_dir_of,
    is_usable_build,
    parse_python_env,
    requested_minor,
)
from ..yaml_errors import yaml_problem

log = logging.getLogger("fedclient.env")

_PRIVATE_ENV = ("FEDN_AUTH_TOKEN", "FEDN_TOKEN", "FEDN_AUTH_REFRESH_TOKEN")
_STEP_TIMEOUT = 3600.0


class EnvBuildError(FedClientError):
    """The package's python_env could not be built; the client stops (exit 1)."""


@dataclass(frozen=True)
class BuiltEnv:
    path: Path  # the published link; stable across restarts
    spec: PythonEnvSpec
    key: str
    python_version: str
    reused: bool
    seconds: float
    tool: str  # "uv", "venv+pip" or "" (reused)

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"

    def find(self, name: str) -> str | None:
        candidate = self.bin_dir / name
        return str(candidate) if candidate.exists() else None


class PackageEnvs:
    """The cache of built python_envs under one directory (``<work dir>/envs``)."""

    def __init__(self, root: Path, uv: str | None = None, base_python: str | None = None) -> None:
        self.root = Path(root)
        # None: look for uv on PATH when a build starts; "" forces venv + pip.
        self._uv = uv
        self._base_python = base_python or sys.executable

    async def ensure(self, package_dir: Path, env_file_name: str) -> BuiltEnv:
        """The built env for the package's python_env file: reused from the cache, or built now."""
        env_file = _inside(package_dir, env_file_name)
        try:
            content = env_file.read_bytes()
        except FileNotFoundError:
            raise PackageError(
                f"fedn.yaml names python_env '{env_file_name}', but the package has no such file"
            ) from None
        except OSError as exc:
            raise PackageError(f"cannot read python_env file {env_file_name}: {exc}") from None
        try:
            data = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise PackageError(yaml_problem(env_file_name, exc)) from None
        spec = parse_python_env(data, env_file_name)
        if spec.extra_keys:
            log.warning("python_env %s: ignoring unknown keys %s", env_file_name, ", ".join(spec.extra_keys))
        base, version = await self._base_for(spec)
        key = env_cache_key(content, version)
        self.root.mkdir(parents=True, exist_ok=True)
        link = self.root / env_link_name(spec, key)
        lock = await asyncio.to_thread(_acquire, self.root / f"{link.name}.lock")
        try:
            started = time.monotonic()
            if _usable(link, key):
                seconds = time.monotonic() - started
                log.info(
                    "python_env '%s' reused from %s (Python %s, %.2f s)", spec.name, link, version, seconds
                )
                return BuiltEnv(link, spec, key, version, True, seconds, "")
            self._sweep(key, keep=None)
            uv = shutil.which("uv") if self._uv is None else (self._uv or None)
            try:
                tool = await self._build(package_dir, spec, base, version, key, link, env_file_name, uv)
            except EnvBuildError as exc:
                if not uv:
                    raise
                # uv reads neither pip.conf nor PIP_* settings: a site's index may only work with pip.
                log.warning("python_env: the build with uv failed (%s); trying again with venv + pip", exc)
                tool = await self._build(package_dir, spec, base, version, key, link, env_file_name, None)
            seconds = time.monotonic() - started
            log.info("python_env '%s' built with %s in %.1f s at %s", spec.name, tool, seconds, link)
            return BuiltEnv(link, spec, key, version, False, seconds, tool)
        finally:
            lock.close()  # closing the file releases the lock

    # ------------------------------------------------------------- build --

    async def _base_for(self, spec: PythonEnvSpec) -> tuple[str, str]:
        """The interpreter the env is made from, and its version.

        FEDn 0.33 always uses its own interpreter and ignores ``python``. We honour it when a
        ``python<major.minor>`` is on PATH, and otherwise say that we use ours, as FEDn does.
        """
        own = self._base_python
        own_version = await _version_of(own) if own != sys.executable else platform.python_version()
        wanted = requested_minor(spec)
        if wanted is None or own_version.startswith(f"{wanted}."):
            if spec.python and wanted is None:
                log.warning(
                    "python_env asks for Python %r, not a version; using %s", spec.python, own_version
                )
            return own, own_version
        other = shutil.which(f"python{wanted}")
        if other:
            return other, await _version_of(other)
        log.warning(
            "python_env asks for Python %s but no python%s is on PATH; using %s (%s), as FEDn does",
            spec.python,
            wanted,
            own,
            own_version,
        )
        return own, own_version

    async def _build(
        self,
        package_dir: Path,
        spec: PythonEnvSpec,
        base: str,
        version: str,
        key: str,
        link: Path,
        env_file_name: str,
        uv: str | None,
    ) -> str:
        target = self.root / build_dir_name(key, secrets.token_hex(4))
        python = target / "bin" / "python"
        steps: list[tuple[str, list[str]]] = []
        if uv:
            steps.append(
                (
                    f"creating the env with uv (Python {version})",
                    [uv, "venv", "--seed", "--python", base, str(target)],
                )
            )
            # pip compiles bytecode as it installs, uv does not by default. Without it every
            # entry point run compiles its imports again wherever no .pyc can be written (the
            # diabetes example's torch imports: 7 s instead of 3 s, docs/PACKAGE-ENV.md).
            install = [uv, "pip", "install", "--compile-bytecode", "--python", str(python)]
        else:
            steps.append(
                (f"creating the env with venv (Python {version})", [base, "-m", "venv", str(target)])
            )
            install = [str(python), "-m", "pip", "install", "--progress-bar", "off"]
        reqs = target / ".fedclient-requirements"
        for what, deps in (
            ("build dependencies", spec.build_dependencies),
            ("dependencies", spec.dependencies),
        ):
            if deps:
                steps.append(
                    (
                        f"installing {what}: {' '.join(deps)}",
                        [*install, "-r", str(reqs / f"{what.split()[0]}.txt")],
                    )
                )
        log.info(
            "building python_env '%s' from %s (%d steps, cache key %s) in %s",
            spec.name,
            env_file_name,
            len(steps),
            key,
            self.root,
        )
        env = _build_env(target)
        try:
            for number, (what, argv) in enumerate(steps, 1):
                log.info("python_env '%s' [%d/%d] %s", spec.name, number, len(steps), what)
                await _run_step(argv, package_dir, env, what)
                if number == 1:  # the venv exists: the requirement files go inside it
                    reqs.mkdir(exist_ok=True)
                    (reqs / "build.txt").write_text("\n".join(spec.build_dependencies) + "\n")
                    (reqs / "dependencies.txt").write_text("\n".join(spec.dependencies) + "\n")
            if not python.exists():
                raise EnvBuildError(f"python_env '{spec.name}': the build made no interpreter at {python}")
            (target / BUILD_MARKER).write_text(key + "\n")
            _publish(link, target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        self._sweep(key, keep=target)
        return "uv" if uv else "venv+pip"

    def _sweep(self, key: str, keep: Path | None) -> None:
        """Delete unpublished or replaced build directories of this key (interrupted builds)."""
        for entry in self.root.iterdir():
            if is_build_dir_of(entry.name, key) and entry != keep:
                shutil.rmtree(entry, ignore_errors=True)


def _inside(package_dir: Path, name: str) -> Path:
    root = Path(package_dir).resolve()
    path = (root / name).resolve()
    if root != path and root not in path.parents:
        raise PackageError(f"python_env '{name}' points outside the compute package")
    return path


def _usable(link: Path, key: str) -> bool:
    if not link.is_symlink() or not link.is_dir():
        return False
    try:
        marker: str | None = (link / BUILD_MARKER).read_text()
    except OSError:
        marker = None
    return is_usable_build(marker, key, (link / "bin" / "python").exists())


def _publish(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` in one rename: readers see the old env or the new one."""
    temp = link.with_name(f".{link.name}.{secrets.token_hex(4)}")
    os.symlink(target.name, temp)
    try:
        os.replace(temp, link)
    except OSError:
        temp.unlink(missing_ok=True)
        raise


def _acquire(path: Path) -> IO[str]:
    """Take the build lock; called in a thread, since another build may hold it for minutes."""
    handle = open(path, "w")  # noqa: SIM115 - the caller closes it to release the lock
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _build_env(target: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV and k != "PYTHONHOME"}
    env.update(
        PIP_NO_INPUT="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        VIRTUAL_ENV=str(target),
        PATH=os.pathsep.join(p for p in (str(target / "bin"), env.get("PATH", "")) if p),
        PYTHONUNBUFFERED="1",
    )
    return env


async def _run_step(argv: list[str], cwd: Path, env: Mapping[str, str], what: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            limit=1024 * 1024,  # pip can print long lines
        )
    except OSError as exc:
        raise EnvBuildError(f"python_env: cannot run {argv[0]} ({what}): {exc}") from None
    tail: list[str] = []
    try:
        code = await asyncio.wait_for(_stream(proc, tail), _STEP_TIMEOUT)
    except TimeoutError:
        _kill(proc)
        await proc.wait()
        raise EnvBuildError(f"python_env build step timed out after {_STEP_TIMEOUT:g} s: {what}") from None
    except BaseException:  # cancelled: the client is stopping; the unpublished build is dropped
        _kill(proc)
        await proc.wait()
        raise
    if code != 0:
        last = tail[-1] if tail else "no output"
        raise EnvBuildError(f"python_env build failed while {what} (exit {code}): {last}")


async def _stream(proc: asyncio.subprocess.Process, tail: list[str]) -> int:
    """Log the step's output line by line; keep the last lines for the error message."""
    assert proc.stdout is not None
    async for raw in proc.stdout:
        line = raw.decode("utf-8", errors="replace").rstrip()
        if line:
            log.info("python_env: %s", line)
            del tail[:-9]
            tail.append(line)
    return await proc.wait()


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _version_of(python: str) -> str:
    try:
        proc = await asyncio.create_subprocess_exec(
            python,
            "-c",
            "import platform; print(platform.python_version())",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except (TimeoutError, OSError) as exc:
        raise EnvBuildError(f"python_env: cannot run {python}: {exc}") from None
    if proc.returncode != 0 or not out.strip():
        raise EnvBuildError(f"python_env: {python} did not report its version")
    return out.decode().strip()
