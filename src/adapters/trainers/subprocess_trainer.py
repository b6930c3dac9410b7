"""Runs a compute package's entry points as child processes: argv lists, bounded, logged.

FEDn hands ``bash -c "<command> <args>"`` to the OS with no timeout and inherited output
(docs/PROTOCOL.md §2.2, §2.3). Here the command is the manifest's argv plus the file paths
as separate arguments (no shell, so paths with spaces or quotes are safe), every run has
a deadline that kills the whole process group, and the output goes to our logger.

``python``/``python3`` in a command are what FEDn's shell would run: the package's built
python_env, else the first on the client's start-up PATH (``domain.package_env`` holds
the order); ``prepare()`` builds the env and logs the choice once at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...domain.errors import ConfigError, PackageError, TaskFailed
from ...domain.model import check_training_metadata
from ...domain.package import Manifest
from ...domain.package_env import PYTHON_NAMES, InterpreterChoice, choose_interpreter, python_commands
from ...domain.policy import ResourceLimits
from ...domain.wording import SettingNames, field_names
from .child_process import ChildRegistry, kill_group, reap, spawn_child
from .limits import OutputBudget, limit_hit, rlimits_for
from .package_env import BuiltEnv, PackageEnvs

log = logging.getLogger("fedclient.trainer")

TAIL_LINES = 50
_MAX_LINE = 64 * 1024
# After the entry point exits (or is killed), how long its output may take to drain.
_DRAIN_SECONDS = 5.0


class SubprocessTrainer:
    """The ``Trainer`` port: each task is one run of the package's entry point."""

    def __init__(
        self,
        package_dir: Path,
        manifest: Manifest,
        timeout: float = 3600.0,
        extra_env: Mapping[str, str] | None = None,
        python: str | None = None,
        envs: PackageEnvs | None = None,
        own_python: str = sys.executable,
        limits: ResourceLimits | None = None,
        registry: ChildRegistry | None = None,
        read_only: bool = False,
        read_only_root: Path | None = None,
        setting_names: SettingNames = field_names,
    ) -> None:
        """``python`` overrides the interpreter; ``envs`` (None: --no-managed-env) builds python_env.

        ``read_only`` (the read_only_package policy): the entry point sees the package
        directory as a read-only mount, which holds for root too (Linux, when permitted);
        with ``read_only_root`` (the FEDN_PACKAGE_EXTRACT_DIR holding the package
        directory) the whole of that directory.
        """
        self._dir = Path(package_dir)
        self._read_only = read_only
        self._view = self._dir
        if read_only_root is not None and self._dir.resolve().is_relative_to(Path(read_only_root).resolve()):
            self._view = Path(read_only_root)
        self._registry = registry
        self._limits = limits or ResourceLimits()
        wall = self._limits.wall_seconds
        self._wall_limited = wall is not None and wall <= timeout
        if wall is not None:
            timeout = min(timeout, wall)
        self._manifest = manifest
        self._timeout = timeout
        self._extra = dict(extra_env or {})
        self._override = _find_override(python) if python else None
        self._envs = envs
        self._own = os.path.abspath(own_python)
        self.env: BuiltEnv | None = None
        self._prepared = not (manifest.python_env and envs is not None and self._override is None)
        self._names = setting_names  # how the interpreter choice names --python
        self.interpreters = self._choose()
        self._env = self._child_env()

    async def prepare(self) -> None:
        """Build or reuse the package's python_env, then log which interpreter runs the package."""
        python_env = self._manifest.python_env
        if python_env and self._override:
            log.info("python_env '%s' not built: --python %s runs the package", python_env, self._override)
        elif python_env and self._envs is None:
            log.warning(
                "python_env '%s' not built (--no-managed-env): the package runs as if it had none", python_env
            )
        elif python_env and self._envs is not None:
            self.env = await self._envs.ensure(self._dir, python_env)
        self._prepared = True
        self.interpreters = self._choose()
        self._env = self._child_env()
        used = [self.interpreters[name] for name in python_commands(self._manifest.entry_points)]
        if not used:
            where = f"python_env {self.env.path} first on PATH" if self.env else "the client's PATH"
            log.info("package interpreter: its entry points call no python command; they run with %s", where)
            return
        line = "package interpreter: " + "; ".join(choice.describe() for choice in used)
        if any(choice.fallback for choice in used):
            log.warning("%s. Put the package's environment on PATH or pass --python.", line)
        else:
            log.info("%s", line)

    def _choose(self) -> dict[str, InterpreterChoice]:
        path = self._extra.get("PATH", os.environ.get("PATH", ""))

        def on_path(name: str) -> str | None:
            found = shutil.which(name, path=path)
            return os.path.abspath(found) if found else None  # never resolve links: a venv's python is one

        env_bin = self.env.find if self.env is not None else None
        return {
            name: choose_interpreter(
                name,
                override=self._override,
                env_bin=env_bin,
                on_path=on_path,
                own=self._own,
                names=self._names,
            )
            for name in PYTHON_NAMES
        }

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env.update(self._extra)
        first: str | None = None
        if self.env is not None:  # what `source <env>/bin/activate` does
            first = str(self.env.bin_dir)
            env["VIRTUAL_ENV"] = str(self.env.path)
            env.pop("PYTHONHOME", None)
        elif self._override:
            first = os.path.dirname(self._override)
        elif any(self.interpreters[n].fallback for n in python_commands(self._manifest.entry_points)):
            first = os.path.dirname(self._own)  # `python` inside the scripts finds the same one
        if first:
            env["PATH"] = os.pathsep.join(p for p in (first, env.get("PATH", "")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")  # lines reach the log as they are printed
        return env

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Run ``train <in> <out>``; the settings go in ``<in>-metadata``, as FEDn scripts expect."""
        settings_file = _metadata_path(in_model)
        _clear(out_model, _metadata_path(out_model))  # only what this run writes counts
        try:
            settings_file.write_text(json.dumps(dict(client_settings), default=str), encoding="utf-8")
        except OSError as exc:
            raise TaskFailed(f"cannot write the client settings to {settings_file}: {exc}") from None
        try:
            await self._run("train", in_model, out_model)
        finally:
            settings_file.unlink(missing_ok=True)
        if not out_model.is_file():
            raise TaskFailed(f"train finished but wrote no model to {out_model}")
        metadata = _read_json_object("train", _metadata_path(out_model), "the training metadata")
        return check_training_metadata(metadata, f"train metadata {_metadata_path(out_model).name}")

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        _clear(out_json)
        await self._run("validate", in_model, out_json)
        return _read_json_object("validate", out_json, "the metrics")

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        _clear(out_json)
        await self._run("predict", in_model, out_json)
        return _read_json_object("predict", out_json, "the prediction")

    async def forward(self, client_id: str, out_embeddings: Path, sl_inference: bool) -> dict[str, Any]:
        """Run ``forward <client_id> <out> <True|False>`` (FEDn's argv); return ``<out>-metadata``."""
        _clear(out_embeddings, _metadata_path(out_embeddings), _npz_twin(out_embeddings))
        await self._run("forward", client_id, out_embeddings, "True" if sl_inference else "False")
        twin = _npz_twin(out_embeddings)
        if not out_embeddings.is_file() and twin.is_file():
            # np.savez(path) appends ".npz" to a path without it; FEDn's client would then send
            # the empty file it created beforehand. We send what the script meant to write.
            log.info("forward wrote %s; sending it as the embeddings", twin.name)
            os.replace(twin, out_embeddings)
        if not out_embeddings.is_file():
            raise TaskFailed(f"forward finished but wrote no embeddings to {out_embeddings}")
        metadata = _read_json_object("forward", _metadata_path(out_embeddings), "the embeddings' metadata")
        examples = metadata.get("num_examples")
        if isinstance(examples, bool) or not isinstance(examples, (int, float)) or not examples >= 0:
            # The combiner silently drops embeddings without it; better to say so here.
            raise TaskFailed(
                f"forward metadata {_metadata_path(out_embeddings).name} needs 'num_examples' as a "
                f"number >= 0, got {examples!r}"
            )
        return metadata

    async def backward(self, in_gradients: Path, client_id: str) -> None:
        """Run ``backward <gradients> <client_id>`` (FEDn's argv); only its exit status counts."""
        await self._run("backward", in_gradients, client_id)

    async def startup(self) -> None:
        """FEDn's `startup` entry point: run once, no arguments, before the first task."""
        await self._run("startup")

    # --------------------------------------------------------------- run --

    def command(self, entry: str, *args: Path | str) -> list[str]:
        """The argv for ``entry`` with ``args`` appended, as it will be executed."""
        try:
            argv = list(self._manifest.argv(entry))
        except PackageError as exc:  # a missing entry point fails this task, not the client
            raise TaskFailed(str(exc)) from None
        if not argv:
            raise TaskFailed(f"the '{entry}' entry point has an empty command")
        if not self._prepared:
            raise TaskFailed("the package's python_env has not been prepared yet")
        if argv[0] in self.interpreters:
            argv[0] = self.interpreters[argv[0]].path
        return argv + [str(a) for a in args]

    async def _run(self, entry: str, *args: Path | str) -> None:
        argv = self.command(entry, *args)
        log.info("running %s: %s (in %s)", entry, argv, self._dir)
        try:
            # Its own session (a kill reaches grandchildren), tied to our life and limited by
            # the site policy's rlimits (child_process, tied_exec).
            proc = await spawn_child(
                argv,
                self._dir,
                self._env,
                self._registry,
                rlimits_for(self._limits),
                read_only=self._view if self._read_only else None,
            )
        except OSError as exc:
            raise TaskFailed(f"cannot start {entry} ({argv[0]}): {exc}") from None
        output: deque[str] = deque(maxlen=TAIL_LINES)
        errors: deque[str] = deque(maxlen=TAIL_LINES)
        assert proc.stdout is not None and proc.stderr is not None
        budget = OutputBudget(self._limits.output_bytes)
        readers = asyncio.gather(
            _pump(proc.stdout, f"{entry}: ", output, budget=budget, proc=proc),
            _pump(proc.stderr, f"{entry} (stderr): ", output, errors, budget=budget, proc=proc),
        )
        try:
            code = await asyncio.wait_for(proc.wait(), self._timeout)
        except TimeoutError:
            await _stop(proc, readers, self._registry)
            which = " (the wall-time limit, limits.wall_seconds)" if self._wall_limited else ""
            raise TaskFailed(f"{entry} timed out after {self._timeout:g} s{which}") from None
        except BaseException:  # cancelled: the client is shutting down or dropped the task
            await _stop(proc, readers, self._registry)
            raise
        try:
            await asyncio.wait_for(asyncio.shield(readers), _DRAIN_SECONDS)
        except TimeoutError:
            # It exited, but children it left behind still hold the pipes open. They are
            # still members of its process group, so the group id cannot have been reused.
            log.warning("%s exited but left processes holding its output open; killing them", entry)
            await _stop(proc, readers, self._registry)
        else:
            if self._registry is not None:
                self._registry.forget(proc.pid)
        if budget.exceeded:
            raise TaskFailed(
                f"{entry} stopped: it printed more than the output limit of {budget.limit} bytes "
                "(limits.output)"
            )
        if code != 0:
            tail = "\n".join(errors or output) or "(no output)"
            hit = limit_hit(self._limits, code, errors or output)
            why = f"; it hit {hit}" if hit else ""
            raise TaskFailed(f"{entry} failed ({_describe(code)}){why}; last output:\n{tail}")


# The client's own credentials are none of the package code's business.
_PRIVATE_ENV = (
    "FEDN_AUTH_TOKEN",
    "FEDN_TOKEN",
    "FEDN_AUTH_REFRESH_TOKEN",
    "FEDN_AUTH_TOKEN_FILE",  # where the secrets are is not the package's business either
    "FEDN_AUTH_REFRESH_TOKEN_FILE",
)


async def _pump(
    stream: asyncio.StreamReader,
    prefix: str,
    *tails: deque[str],
    budget: OutputBudget | None = None,
    proc: asyncio.subprocess.Process | None = None,
) -> None:
    """Log each line of a child's output as it arrives and keep the last ones.

    Past the output budget the child's process group is killed and the rest is not logged.
    """
    buffer = b""
    while True:
        chunk = await stream.read(65536)
        if budget is not None and budget.spend(len(chunk)) and proc is not None:
            kill_group(proc.pid)
        if budget is not None and budget.exceeded:
            if not chunk:
                return
            continue  # drain without logging, so the child's writes do not block before it dies
        buffer += chunk
        lines = buffer.split(b"\n")
        buffer = lines.pop() if chunk else b""
        if len(buffer) > _MAX_LINE:  # a "line" that never ends: log it in pieces
            lines.append(buffer)
            buffer = b""
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            if not chunk and not line:
                continue
            log.info("%s%s", prefix, line)
            for tail in tails:
                tail.append(line)
        if not chunk:
            return


async def _stop(
    proc: asyncio.subprocess.Process, readers: asyncio.Future[Any], registry: ChildRegistry | None = None
) -> None:
    """Kill the entry point's whole process group, reap it (bounded), and stop reading its output."""
    kill_group(proc.pid)
    await reap(proc, registry)
    try:
        await asyncio.wait_for(readers, _DRAIN_SECONDS)
    except TimeoutError:  # something escaped the group (setsid) and kept the pipes
        log.warning("output of pid %s still open after kill; no longer reading it", proc.pid)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _clear(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()


def _npz_twin(path: Path) -> Path:
    return path.with_name(path.name + ".npz")


def _metadata_path(path: Path) -> Path:
    """FEDn's side-file convention: ``<file>-metadata`` next to the model."""
    return path.with_name(path.name + "-metadata")


def _read_json_object(entry: str, path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskFailed(f"{entry} finished but did not write {what} to {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TaskFailed(f"{entry} wrote {what} to {path.name}, but it is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TaskFailed(f"{entry} must write {what} as a JSON object, got {type(data).__name__}")
    return data


def _find_override(python: str) -> str:
    """``--python``: a path, or a command name looked up on PATH; it must exist."""
    found = shutil.which(python) if os.sep not in python else (python if os.path.exists(python) else None)
    if not found:
        raise ConfigError(f"--python {python}: no such interpreter")
    return os.path.abspath(found)
