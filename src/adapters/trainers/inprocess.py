"""A minimal in-process ``Trainer``: the package's Python callbacks, imported once, called per task.

Used by ``fedclient simulate``, where a thousand clients share one process and
an interpreter start per task (the subprocess trainer) would be the whole cost.
The callbacks live in one module of the package (``callbacks.py`` by default)::

    def train(model: Path, settings: dict) -> tuple[Path | bytes, dict]   # new model, metadata
    def validate(model: Path) -> dict                                      # metrics
    def predict(model: Path) -> dict                                       # optional

``metadata`` must hold ``num_examples``, as for FEDn's train entry point. The
calls run on the event loop's default thread pool, so every client in the
process shares a handful of threads instead of owning one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ...domain.errors import ConfigError, TaskFailed
from ...domain.package import Manifest
from ...domain.ports import TrainerFactory

DEFAULT_MODULE = "callbacks"
_loaded: dict[Path, ModuleType] = {}


def load_callbacks(package_dir: Path, module: str = DEFAULT_MODULE) -> ModuleType:
    """Import ``<package_dir>/<module>.py`` once per process and check it has ``train``."""
    path = (package_dir / f"{module}.py").resolve()
    if path in _loaded:
        return _loaded[path]
    if not path.is_file():
        raise ConfigError(
            f"no {module}.py in {package_dir}: in-process clients need train/validate callbacks"
        )
    spec = importlib.util.spec_from_file_location(f"fedclient_callbacks_{len(_loaded)}", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # its own helper modules, as a script run from there sees them
    try:
        spec.loader.exec_module(loaded)
    except Exception as exc:
        raise ConfigError(f"importing {path} raised {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(str(path.parent))
    if not callable(getattr(loaded, "train", None)):
        raise ConfigError(f"{path} has no train(model, settings) function")
    _loaded[path] = loaded
    return loaded


class InProcessTrainer:
    """The domain's ``Trainer`` over a callbacks module."""

    def __init__(self, callbacks: ModuleType) -> None:
        self._cb = callbacks

    def _callback(self, name: str) -> Callable[..., Any]:
        fn = getattr(self._cb, name, None)
        if not callable(fn):
            raise TaskFailed(f"the package's callbacks have no {name}() function")
        return fn  # type: ignore[no-any-return]

    async def _call(self, name: str, *args: Any) -> Any:
        fn = self._callback(name)
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as exc:
            raise TaskFailed(f"{name}() raised {type(exc).__name__}: {exc}") from exc

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        result = await self._call("train", in_model, dict(client_settings))
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
            raise TaskFailed("train() must return (model, metadata)")
        model, metadata = result
        if isinstance(model, (bytes, bytearray, memoryview)):
            out_model.write_bytes(model)
        elif isinstance(model, (str, Path)):
            if Path(model).resolve() != out_model.resolve():
                shutil.copyfile(model, out_model)
        else:
            raise TaskFailed(f"train() returned a {type(model).__name__} as the model; give a path or bytes")
        examples = metadata.get("num_examples")
        if isinstance(examples, bool) or not isinstance(examples, (int, float)) or not examples >= 0:
            raise TaskFailed(f"train() metadata needs 'num_examples' as a number >= 0, got {examples!r}")
        return metadata

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        return await self._report("validate", in_model, out_json)

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        return await self._report("predict", in_model, out_json)

    async def _report(self, name: str, in_model: Path, out_json: Path) -> dict[str, Any]:
        result = await self._call(name, in_model)
        if not isinstance(result, dict):
            raise TaskFailed(f"{name}() must return a dict, got {type(result).__name__}")
        out_json.write_text(json.dumps(result, default=str), encoding="utf-8")
        return result

    async def startup(self) -> None:
        startup = getattr(self._cb, "startup", None)
        if callable(startup):
            await self._call("startup")


def inprocess_trainer_factory(module: str = DEFAULT_MODULE) -> TrainerFactory:
    def build(package_dir: Path, manifest: Manifest) -> InProcessTrainer:
        return InProcessTrainer(load_callbacks(package_dir, module))

    return build
