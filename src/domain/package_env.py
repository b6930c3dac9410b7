"""Which Python runs a compute package, and the rules for a package's managed ``python_env``.

Pure policy; the adapter ``adapters.trainers.package_env`` does the I/O. Three decisions live here:

* the interpreter for each ``python``/``python3`` command (``choose_interpreter``):
  an interpreter the site names explicitly wins, then the package's built ``python_env``, then the
  client's start-up PATH (what FEDn's shell would run), and only then the client's own
  interpreter, with a warning because that is rarely what a site meant;
* what a ``python_env`` file says (``parse_python_env``), with FEDn 0.33's keys and defaults;
* where a built env is cached and when a cached one may be used (``env_cache_key``,
  ``env_link_name``, ``build_dir_name``, ``is_usable_build``): keyed by the file's bytes
  and the Python version, and a build counts only once it is complete and published.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .errors import PackageError
from .wording import Form, SettingNames, field_names

# The commands that mean "the Python interpreter" in an entry point.
PYTHON_NAMES = ("python", "python3")
# Written last into a finished build; a directory without it was interrupted.
BUILD_MARKER = ".fedclient-env"
_CACHE_FORMAT = "fedclient-env-v1"


class Source:
    """Why an interpreter was chosen (the words appear in the start-up log line; also ``override_source``)."""

    MANAGED_ENV = "the package's python_env"
    PATH = "found on PATH"
    OWN = "fedclient's own interpreter"


def override_source(names: SettingNames = field_names) -> str:
    """Why an interpreter the site named explicitly was chosen."""
    return f"set by {names('python', Form.FLAG)}"


@dataclass(frozen=True)
class InterpreterChoice:
    command: str  # what the entry point says: python or python3
    path: str
    source: str
    fallback: bool = False  # PATH had no such command: the client's own is used instead

    def describe(self) -> str:
        if self.fallback:
            return f"{self.command} -> {self.path} ({self.source}: no '{self.command}' on PATH)"
        return f"{self.command} -> {self.path} ({self.source})"


def choose_interpreter(
    command: str,
    *,
    override: str | None,
    env_bin: Callable[[str], str | None] | None,
    on_path: Callable[[str], str | None],
    own: str,
    names: SettingNames = field_names,
) -> InterpreterChoice:
    """The interpreter that runs ``command`` (``python`` or ``python3``) in an entry point.

    ``env_bin(name)`` finds ``name`` in the package's built env (None: no managed env);
    ``on_path(name)`` looks ``name`` up on the client's start-up PATH, as a shell would;
    ``names`` says how the override's setting is named (the app's spelling).
    """
    if override:
        return InterpreterChoice(command, override, override_source(names))
    if env_bin is not None:
        found = env_bin(command) or env_bin("python")
        if found:
            return InterpreterChoice(command, found, Source.MANAGED_ENV)
    found = on_path(command)
    if found:
        return InterpreterChoice(command, found, Source.PATH)
    return InterpreterChoice(command, own, Source.OWN, fallback=True)


def python_commands(commands: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The interpreter names the manifest's entry points use, in PYTHON_NAMES order."""
    used = {argv[0] for argv in commands.values() if argv}
    return [name for name in PYTHON_NAMES if name in used]


# ----------------------------------------------------------------- python_env --


@dataclass(frozen=True)
class PythonEnvSpec:
    """A ``python_env`` file, with FEDn 0.33's keys and defaults."""

    name: str = "fedn_env"
    python: str | None = None  # FEDn's default is the running interpreter's version
    build_dependencies: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    extra_keys: tuple[str, ...] = field(default=(), compare=False)


def parse_python_env(data: object, source: str) -> PythonEnvSpec:
    """Validate an already-loaded python_env YAML document (FEDn raises on wrong types too)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PackageError(f"{source}: expected a mapping of name/python/dependencies, got {_kind(data)}")
    name = data.get("name", "fedn_env")
    if not isinstance(name, str) or not name.strip():
        raise PackageError(f"{source}: 'name' must be a non-empty string, got {name!r}")
    python = data.get("python")
    if python is not None and not isinstance(python, (str, int, float)):
        raise PackageError(f"{source}: 'python' must be a version such as 3.11, got {python!r}")
    lists = {}
    for key in ("build_dependencies", "dependencies"):
        value = data.get(key)
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise PackageError(f"{source}: '{key}' must be a list of requirement strings, got {value!r}")
        for item in value:
            _check_requirement(source, key, item)
        lists[key] = tuple(v.strip() for v in value)
    known = {"name", "python", "build_dependencies", "dependencies"}
    return PythonEnvSpec(
        name=name.strip(),
        python=None if python is None else str(python).strip(),
        build_dependencies=lists["build_dependencies"],
        dependencies=lists["dependencies"],
        extra_keys=tuple(sorted(str(k) for k in data if k not in known)),
    )


def requested_minor(spec: PythonEnvSpec) -> str | None:
    """``"3.10"`` for ``python: 3.10.12`` (or ``3.10``); None when the file names no usable version."""
    if not spec.python:
        return None
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", spec.python)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def env_cache_key(env_file: bytes, python_version: str) -> str:
    """Same file bytes + same interpreter version = the same env, whatever the package version."""
    digest = hashlib.sha256()
    for part in (_CACHE_FORMAT.encode(), python_version.encode(), env_file):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:20]


def env_link_name(spec: PythonEnvSpec, key: str) -> str:
    """The published name of a built env under the cache dir (a link to its build directory)."""
    safe = re.sub(r"[^\w.-]+", "_", spec.name).strip("._") or "env"
    return f"{safe}-{key}"


def build_dir_name(key: str, token: str) -> str:
    """A fresh build directory; it is only ever used once a link to it has been published."""
    return f".build-{key}-{token}"


def is_build_dir_of(dir_name: str, key: str) -> bool:
    return dir_name.startswith(f".build-{key}-")


def is_usable_build(marker_text: str | None, key: str, has_python: bool) -> bool:
    """A build may be used only if it finished (the marker names this key) and has its interpreter."""
    return has_python and marker_text is not None and marker_text.strip() == key


def _check_requirement(source: str, key: str, item: str) -> None:
    """One requirement per entry, and nothing that changes how or from where pip installs.

    The entries become lines of a requirements file, so a line break would smuggle in a
    second line, and a line starting with ``-`` is a pip option (an index URL, a trusted host,
    ``-r other.txt``, ``-e ../..``), not a package.
    """
    if any(ch in item for ch in "\r\n\x00") or not item.isprintable():
        raise PackageError(f"{source}: '{key}' entry {item[:80]!r} holds a line break or control character")
    if item.strip().startswith("-"):
        raise PackageError(
            f"{source}: '{key}' entry {item.strip()[:80]!r} is a pip option, not a requirement; "
            "python_env installs only the packages it lists"
        )


def _kind(value: object) -> str:
    return type(value).__name__
