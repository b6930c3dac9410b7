"""``InProcessClient``: your own Python functions as the client's trainer, FEDn 0.33's in-process way.

The callbacks are called on one long-lived worker thread of this process (see
``adapters.trainers.callback_trainer``) while the client's event loop keeps the
task stream and heartbeats going. ``run()`` blocks; ``await run_async()`` runs in
your own event loop. From inside a callback, ``log_metric`` / ``log_attributes``
send ModelMetric / AttributeMessage tagged with the task's session, round and model.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ...adapters.trainers.callback_trainer import Callbacks, log_attributes, log_metric
from ...app.container import build_container, client_lifecycle
from ...app.signals import stop_on_signals
from ...domain.errors import ConfigError
from ...domain.lifecycle import Lifecycle
from ._config import settings_from_config

log = logging.getLogger("fedclient.api")


class InProcessClient:
    """Joins a FEDn network with callbacks instead of a compute package.

    ``config`` takes the keys of client.yaml (``api_url``, ``api_port``, ``token``, ``name``, …).
    ``models``: how a callback receives the model: ``"path"`` (a file), ``"numpy"`` (a list of
    arrays, FEDn's numpyhelper layout) or ``"bytesio"`` (as FEDn's in-process client).
    """

    log_metric = staticmethod(log_metric)
    log_attributes = staticmethod(log_attributes)

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        train: Callable[..., Any] | None = None,
        validate: Callable[..., Any] | None = None,
        predict: Callable[..., Any] | None = None,
        forward: Callable[..., Any] | None = None,
        backward: Callable[..., Any] | None = None,
        models: str = "path",
    ) -> None:
        self.settings = settings_from_config(config)
        self.callbacks = Callbacks(train, validate, predict, forward, backward, models)
        self.lifecycle: Lifecycle | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # FEDn 0.33's setters, for code written against FednClient.
    def set_train_callback(self, callback: Callable[..., Any]) -> None:
        self.callbacks = dataclasses.replace(self.callbacks, train=callback)

    def set_validate_callback(self, callback: Callable[..., Any]) -> None:
        self.callbacks = dataclasses.replace(self.callbacks, validate=callback)

    def set_predict_callback(self, callback: Callable[..., Any]) -> None:
        self.callbacks = dataclasses.replace(self.callbacks, predict=callback)

    def set_forward_callback(self, callback: Callable[..., Any]) -> None:
        self.callbacks = dataclasses.replace(self.callbacks, forward=callback)

    def set_backward_callback(self, callback: Callable[..., Any]) -> None:
        self.callbacks = dataclasses.replace(self.callbacks, backward=callback)

    def run(self) -> None:
        """Serve tasks until ``stop()``, Ctrl-C or SIGTERM.

        The first signal lets the running callback finish (``shutdown_grace``); a second
        ends the process at once (``app.signals``).
        """
        try:
            asyncio.run(self.run_async(signals=True))
        except KeyboardInterrupt:
            log.info("stopped")

    async def run_async(self, *, signals: bool = False) -> None:
        """Serve tasks inside the running event loop until ``stop()`` is called.

        ``signals=True`` also stops it on SIGINT/SIGTERM as ``run()`` does; by default your
        program keeps its own signal handling.
        """
        if not self.callbacks.names():
            raise ConfigError("give at least one callback (train, validate, predict, forward, backward)")
        self._loop = asyncio.get_running_loop()
        self._stop = stop = asyncio.Event()
        # client_lifecycle locks the work dir: its outbox, identity and privacy record have one writer
        async with client_lifecycle(build_container(self.settings, callbacks=self.callbacks)) as lifecycle:
            self.lifecycle = lifecycle
            with stop_on_signals(stop, lifecycle.stop_outlook) if signals else contextlib.nullcontext():
                await lifecycle.run(stop)

    def stop(self) -> None:
        """Ask a running client to stop (from any thread, or from a callback)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(self._announce_stop, stop)

    def _announce_stop(self, stop: asyncio.Event) -> None:
        if not stop.is_set():
            lifecycle = self.lifecycle  # None while the client is still being built
            log.info("stopping: %s", lifecycle.stop_outlook() if lifecycle else "the client is starting")
            stop.set()
