"""The ``Trainer`` port over the user's own Python functions (the in-process client).

The callbacks are loaded once and stay loaded: each task is a call on one
long-lived worker thread (or, for many clients in one process such as
``fedclient simulate``, on a thread pool they share), not an interpreter start. The event loop (task stream,
heartbeats, uploads) keeps running beside it; ``bench/heartbeat_jitter.py``
measured this against a persistent worker process (README, "In-process client"):
alike for numpy code, ~20 ms later heartbeats for GIL-bound Python, against a 2 s
heartbeat and a 10 s liveness window. The thread needs no pickling and keeps contexts.

Callbacks, as in FEDn 0.33's in-process client:
``train(model, settings) -> (model, metadata)``, ``validate(model) -> metrics``,
``predict(model) -> prediction``, ``forward(client_id, is_sl_inference) -> (embeddings, metadata)``,
``backward(gradients, client_id) -> metadata``. ``model`` is a ``Path`` (``models="path"``), a
list of numpy arrays (``models="numpy"``) or a ``BytesIO`` (``models="bytesio"``, FEDn's form).
A returned model may be any of those. A callback that raises fails its task, not the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import importlib.util
import io
import logging
import os
import queue
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...domain.errors import ConfigError, FedClientError, TaskFailed
from ...domain.model import AttributeReport, check_training_metadata
from ...domain.package import Manifest
from ...domain.ports import TrainerFactory
from ...domain.task_context import check_attributes, current_task
from .. import model_npz

log = logging.getLogger("fedclient.callbacks")

MODEL_FORMS = ("path", "numpy", "bytesio")
# How long log_metric waits for the combiner to take a report before it gives up (returns False).
REPORT_TIMEOUT = 60.0


CALLBACK_NAMES = ("train", "validate", "predict", "forward", "backward")


@dataclass(frozen=True)
class Callbacks:
    train: Callable[..., Any] | None = None
    validate: Callable[..., Any] | None = None
    predict: Callable[..., Any] | None = None
    forward: Callable[..., Any] | None = None
    backward: Callable[..., Any] | None = None
    # How models reach the callbacks: "path", "numpy" or "bytesio" (an object may set `models`).
    models: str = "path"

    def __post_init__(self) -> None:
        if self.models not in MODEL_FORMS:
            raise ConfigError(f"models must be one of {', '.join(MODEL_FORMS)}, got {self.models!r}")
        for name in CALLBACK_NAMES:
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ConfigError(f"the {name} callback is not callable (got {type(value).__name__})")

    @classmethod
    def from_object(cls, obj: Any, where: str = "the entry point") -> Callbacks:
        """Callbacks from a module, an object with those methods, or a dict of them.

        An object that has none of them but is callable is a factory: it is called
        once (with no arguments) and its result is used.
        """
        found = cls._collect(obj)
        if not found and callable(obj):
            try:
                obj = obj()
            except Exception as exc:
                raise ConfigError(f"{where}: calling it raised {type(exc).__name__}: {exc}") from None
            found = cls._collect(obj)
        if not found:
            raise ConfigError(f"{where} has none of the callbacks {', '.join(CALLBACK_NAMES)}")
        models = obj.get("models") if isinstance(obj, Mapping) else getattr(obj, "models", None)
        try:
            return cls(**found, models=models or "path")
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @staticmethod
    def _collect(obj: Any) -> dict[str, Any]:
        if isinstance(obj, Mapping):
            return {n: obj[n] for n in CALLBACK_NAMES if obj.get(n) is not None}
        return {n: getattr(obj, n) for n in CALLBACK_NAMES if getattr(obj, n, None) is not None}

    def names(self) -> list[str]:
        return [name for name in CALLBACK_NAMES if getattr(self, name) is not None]


def load_entrypoint(spec: str) -> Callbacks:
    """``package.module:object`` (or just ``package.module``) → its Callbacks, imported once.

    The current directory is searched last, after everything installed, so a user's
    module can be found without ever shadowing a library.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigError(f"--entrypoint must look like package.module:object, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--entrypoint {spec}: cannot import {exc.name or module_name!r}") from None
    except Exception as exc:  # the user's module failed while being imported
        raise ConfigError(f"--entrypoint {spec}: importing it raised {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split(".") if attr else []:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"--entrypoint {spec}: {module_name} has no attribute {attr!r}") from None
    return Callbacks.from_object(obj, f"--entrypoint {spec}")


_from_files: dict[Path, Callbacks] = {}


def load_package_callbacks(package_dir: Path, module: str = "callbacks") -> Callbacks:
    """``<package_dir>/<module>.py`` → its Callbacks, imported once per process; it must have ``train``.

    Its own directory is on ``sys.path`` while it is imported, so it finds its helper
    modules as a script run from there would.
    """
    path = (package_dir / f"{module}.py").resolve()
    if path in _from_files:
        return _from_files[path]
    if not path.is_file():
        raise ConfigError(
            f"no {module}.py in {package_dir}: in-process clients need train/validate callbacks"
        )
    spec = importlib.util.spec_from_file_location(f"fedclient_callbacks_{len(_from_files)}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path} cannot be imported as a Python module")
    loaded = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(loaded)
    except Exception as exc:  # the user's module failed while being imported
        raise ConfigError(f"importing {path} raised {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(str(path.parent))
    callbacks = Callbacks.from_object(loaded, str(path))
    if callbacks.train is None:
        raise ConfigError(f"{path} has no train(model, settings) function")
    _from_files[path] = callbacks
    return callbacks


# --------------------------------------------------------------- worker --


class _Worker:
    """Runs every callback in the caller's context (ContextVars included).

    By default on one daemon thread of its own (daemon, so a stopping client never waits
    for a training run that nobody will use); with ``executor``, on that executor's
    threads, so many clients in one process share a handful of threads.
    """

    _local = threading.local()

    def __init__(self, executor: Executor | None = None) -> None:
        self._executor = executor
        self._jobs: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        job = (loop, future, contextvars.copy_context(), fn, args)
        if self._executor is not None:
            try:
                queued = self._executor.submit(_run, *job)
            except RuntimeError:  # the pool is shut down: the simulation is stopping
                raise TaskFailed("stopped before the callback started") from None
            # Cancelled before it ran (the pool shut down with cancel_futures): the task fails
            # now instead of waiting for a callback that will never run.
            queued.add_done_callback(lambda done: _never_ran(done, loop, future))
            return future
        self._jobs.put(job)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="fedclient-callbacks", daemon=True)
                self._thread.start()
        return future

    def _serve(self) -> None:
        while True:
            _run(*self._jobs.get())

    @classmethod
    def loop(cls) -> asyncio.AbstractEventLoop | None:
        return getattr(cls._local, "loop", None)


def _run(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    context: contextvars.Context,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    _Worker._local.loop = loop
    try:
        outcome: tuple[bool, Any] = (True, context.run(fn, *args))
    except BaseException as exc:  # handed to the awaiting task, never lost in this thread
        outcome = (False, exc)
    finally:
        _Worker._local.loop = None
    with contextlib.suppress(RuntimeError):  # a closed loop: the client is gone
        loop.call_soon_threadsafe(_settle, future, outcome)


def _never_ran(done: Future[None], loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
    if done.cancelled():
        failed = TaskFailed("stopped before the callback started")
        with contextlib.suppress(RuntimeError):  # a closed loop: the client is gone
            loop.call_soon_threadsafe(_settle, future, (False, failed))


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# -------------------------------------------------------------- reports --


def log_metric(metrics: Mapping[str, Any], step: int | None = None, commit: bool = True) -> bool:
    """Send metrics from inside a callback, tagged with the task's session, round and model.

    Returns True once the combiner has them, False outside a task or when they could
    not be delivered. A value that is not a number is a ValueError.
    """
    context = current_task()
    if context is None:
        log.error("log_metric was called outside a train/validate/predict callback; nothing sent")
        return False
    report = context.metric_report(metrics, step, commit)
    return _deliver(context.send_metric(report), "metrics")


def log_attributes(attributes: Mapping[str, Any]) -> bool:
    """Send facts about this client (values become text), from inside a callback."""
    context = current_task()
    if context is None:
        log.error("log_attributes was called outside a callback; nothing sent")
        return False
    report = AttributeReport(check_attributes(attributes))
    return _deliver(context.send_attributes(report), "attributes")


_background: set[asyncio.Task[Any]] = set()


def _deliver(coroutine: Any, what: str) -> bool:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:  # called on the event loop itself: cannot block it, so send in the background
        task = running.create_task(coroutine)
        _background.add(task)
        task.add_done_callback(_background.discard)
        return True
    loop = _Worker.loop()
    if loop is None:
        coroutine.close()
        log.error("%s can only be sent from the callback's own thread; nothing sent", what)
        return False
    try:
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(REPORT_TIMEOUT)
        return True
    except FedClientError as exc:
        log.warning("could not send %s: %s", what, exc)
    except TimeoutError:
        log.warning("could not send %s within %.0f s", what, REPORT_TIMEOUT)
    return False


# -------------------------------------------------------------- trainer --


class CallbackTrainer:
    """The ``Trainer`` port: each task is one callback call on the worker thread (or ``executor``)."""

    def __init__(self, callbacks: Callbacks, executor: Executor | None = None) -> None:
        self._callbacks = callbacks
        self._models = callbacks.models
        self._worker = _Worker(executor)

    @property
    def callbacks(self) -> Callbacks:
        return self._callbacks

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        result = await self._call("train", self._model_arg(in_model), dict(client_settings))
        model, metadata = _pair("train", result)
        _write_model("train", model, out_model)
        if isinstance(metadata, Mapping) and isinstance(metadata.get("training_metadata"), Mapping):
            metadata = metadata["training_metadata"]  # FEDn's in-process form nests it
        return check_training_metadata(metadata, "the train callback's metadata")

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        return _mapping("validate", await self._call("validate", self._model_arg(in_model)))

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        return _mapping("predict", await self._call("predict", self._model_arg(in_model)))

    async def startup(self) -> None:
        """Nothing to start: the callbacks were loaded when the client was built."""

    async def forward(self, client_id: str, out_embeddings: Path, is_sl_inference: bool) -> dict[str, Any]:
        """Split learning: ``forward(client_id, is_sl_inference) -> (embeddings, metadata)``."""
        embeddings, metadata = _pair("forward", await self._call("forward", client_id, is_sl_inference))
        _write_model("forward", embeddings, out_embeddings)
        return check_training_metadata(metadata, "the forward callback's metadata")

    async def backward(self, in_gradients: Path, client_id: str) -> dict[str, Any]:
        """Split learning: ``backward(gradients, client_id) -> metadata``."""
        gradients: Any = in_gradients
        if self._models == "numpy":
            gradients = model_npz.load_named_arrays(in_gradients)
        elif self._models == "bytesio":
            gradients = io.BytesIO(in_gradients.read_bytes())
        result = await self._call("backward", gradients, client_id)
        return {} if result is None else _mapping("backward", result)

    # ------------------------------------------------------------ helpers --

    def _model_arg(self, path: Path) -> Any:
        if self._models == "numpy":
            return model_npz.load_arrays(path)
        if self._models == "bytesio":
            return io.BytesIO(path.read_bytes())
        return path

    async def _call(self, name: str, *args: Any) -> Any:
        callback = getattr(self._callbacks, name)
        if callback is None:
            have = ", ".join(self._callbacks.names())
            raise TaskFailed(f"no {name} callback was given (the client has: {have})")
        try:
            return await self._worker.submit(callback, *args)
        except (FedClientError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.error("the %s callback raised", name, exc_info=True)
            raise TaskFailed(f"the {name} callback raised {type(exc).__name__}: {exc}") from None


def _pair(name: str, result: Any) -> tuple[Any, Any]:
    if not isinstance(result, tuple) or len(result) != 2:
        raise TaskFailed(f"the {name} callback must return (model, metadata), got {type(result).__name__}")
    return result[0], result[1]


def _mapping(name: str, result: Any) -> dict[str, Any]:
    if not isinstance(result, Mapping):
        raise TaskFailed(f"the {name} callback must return a dict, got {type(result).__name__}")
    return dict(result)


def _write_model(name: str, model: Any, dest: Path) -> None:
    """Put what a callback returned (a path, bytes, a BytesIO or arrays) into ``dest``."""
    if model is None:
        raise TaskFailed(f"the {name} callback returned no model")
    if isinstance(model, (str, os.PathLike)):
        src = Path(model)
        if not src.is_file():
            raise TaskFailed(f"the {name} callback returned {src}, which is not a file")
        if src.resolve() != dest.resolve():
            shutil.copyfile(src, dest)
    elif isinstance(model, (bytes, bytearray, memoryview)):
        dest.write_bytes(model)
    elif isinstance(model, io.IOBase):
        model.seek(0)
        with dest.open("wb") as out:
            shutil.copyfileobj(model, out)
    else:
        try:
            model_npz.save_arrays(model, dest)
        except TaskFailed:
            raise
        except Exception as exc:
            raise TaskFailed(
                f"the {name} callback returned a {type(model).__name__}, which is not a path, bytes, "
                f"a BytesIO or a list of arrays ({exc})"
            ) from None


def callback_trainer_factory(callbacks: Callbacks, executor: Executor | None = None) -> TrainerFactory:
    """A ``TrainerFactory`` that ignores the package: the trainer is the user's own code.

    Every client built from it shares the one trainer; give ``executor`` when many clients
    should run callbacks side by side on its threads instead of one after another.
    """
    trainer = CallbackTrainer(callbacks, executor)

    def build(package_dir: Path, manifest: Manifest) -> CallbackTrainer:
        return trainer

    return build
