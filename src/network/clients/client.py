"""``Client``: FEDn's client class, as a synchronous facade over fedclient's lifecycle and adapters.

``assign()`` is the client's own assigner (``domain.assigner``: its retry and wait rules),
``connect()`` opens a link with the container's gRPC connector, and the model calls stream
through that link's transfer, so nothing here re-implements a rule. Each Client owns a private event loop
on a daemon thread; call ``close()`` (or use ``with``) when done.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...adapters.controller_http.conversions import combiner_address
from ...app.container import build_container, client_lifecycle
from ...app.signals import stop_on_signals
from ...domain.assigner import Assigner
from ...domain.errors import ConfigError, ModelNotFound
from ...domain.model import CombinerAddress, Identity
from ...domain.ports import CombinerConnector, CombinerLink
from ._config import settings_from_config
from ._portal import Portal
from .connect import combiner_config

log = logging.getLogger("fedclient.api")

_RETRY_PAUSE = 1.0


class Client:
    """A FEDn client built from a client.yaml-style dict (0.33 and 0.9-era keys)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.settings = settings_from_config(config)
        self._container = build_container(self.settings)
        self._portal = Portal("fedclient-client")
        # for assign() and connect(); its adapters are closed by close()
        try:
            self._assigner, self._connector = self._portal.call(self._build())
        except BaseException:
            self._portal.call(self._shut_resources())
            self._portal.close()
            raise
        self.name = self.settings.name
        self.id = self.settings.client_id
        self.combiner_config: dict[str, Any] | None = None
        self._link: CombinerLink | None = None

    async def _shut_resources(self) -> None:
        closing = self._container.shutdown_resources()
        if closing is not None:
            await closing

    async def _build(self) -> tuple[Assigner, CombinerConnector]:
        """The assigner and the connector, built on the portal's loop (its adapters belong to that loop).

        The identity is kept in the work dir now, so that ``run()`` joins as the same client.
        """
        self._container.identity_file()
        lifecycle = await self._container.lifecycle()
        return lifecycle.assigner, await self._container.connector()

    # ---------------------------------------------------------- controller --

    def assign(self) -> dict[str, Any]:
        """Ask the controller for a combiner, waiting while it says "try again"; the combiner config."""
        assigned = self._portal.call(self._assigner.assign())
        assert assigned is not None  # without a budget: assigned, or an error
        answer = assigned.answer
        if answer.client_id:
            self.id = answer.client_id
        self.combiner_config = combiner_config(answer, self._assigner.plan.package_mode)
        return self.combiner_config

    # ------------------------------------------------------------ combiner --

    def connect(self, combiner_config: Mapping[str, Any]) -> bool:
        """Open the gRPC link to the combiner named in ``combiner_config`` (what ``assign()`` returned)."""
        address = _address(combiner_config)
        identity = Identity(self.name, str(combiner_config.get("client_id") or self.id))
        if self._link is not None:
            self._portal.call(self._link.close())
        self._link = self._portal.call(self._connector.connect(address, identity))
        self.id = identity.client_id
        log.info("connected to combiner %s", address.target)
        return True

    def get_model_from_combiner(
        self, id: str, timeout: float = 20, path: str | Path | None = None
    ) -> io.BytesIO | Path | None:
        """Download model ``id``: a BytesIO (positioned at 0), or with ``path=`` streamed to that file.

        ``timeout``: seconds to keep asking for a model the combiner does not have (yet);
        then None, as in FEDn.
        """
        link = self._need_link()
        if path is not None:
            target = Path(path)
            return target if self._portal.call(self._download(link, id, target, timeout)) else None
        with tempfile.TemporaryDirectory(prefix="fedclient-model-") as scratch:
            target = Path(scratch) / "model"
            if not self._portal.call(self._download(link, id, target, timeout)):
                return None
            return io.BytesIO(target.read_bytes())

    async def _download(self, link: CombinerLink, model_id: str, dest: Path, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await link.download(model_id, dest)
                return True
            except ModelNotFound as exc:
                if asyncio.get_running_loop().time() + _RETRY_PAUSE > deadline:
                    log.warning("%s", exc)
                    return False
            await asyncio.sleep(_RETRY_PAUSE)

    def send_model_to_combiner(self, model: io.BytesIO | bytes | str | Path, id: str) -> Any:
        """Upload ``model`` (a BytesIO, bytes or a file path) as model ``id``; returns ``model``."""
        link = self._need_link()
        if isinstance(model, (str, os.PathLike)):
            self._portal.call(link.upload(id, Path(model)))
            return model
        data = model.getvalue() if isinstance(model, io.BytesIO) else bytes(model)
        with tempfile.TemporaryDirectory(prefix="fedclient-model-") as scratch:
            src = Path(scratch) / "model"
            src.write_bytes(data)
            self._portal.call(link.upload(id, src))
        return model

    # --------------------------------------------------------------- serve --

    def run(self) -> None:
        """Join the federation and serve tasks with the compute package, until Ctrl-C or SIGTERM.

        The first signal lets the running task finish (``shutdown_grace``); a second ends
        the process at once (``app.signals``).
        """

        async def serve() -> None:
            stop = asyncio.Event()
            async with client_lifecycle(build_container(self.settings)) as lifecycle:
                with stop_on_signals(stop, lifecycle.stop_outlook):
                    await lifecycle.run(stop)

        try:
            asyncio.run(serve())  # client_lifecycle: one client per work dir and per extract dir
        except KeyboardInterrupt:
            log.info("stopped")

    def _need_link(self) -> CombinerLink:
        if self._link is None:
            raise ConfigError("not connected to a combiner: call connect(assign()) first")
        return self._link

    def close(self) -> None:
        async def shut() -> None:
            if self._link is not None:
                await self._link.close()
            await self._shut_resources()

        self._portal.call(shut())
        self._link = None
        self._portal.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _address(config: Mapping[str, Any]) -> CombinerAddress:
    host, port, fqdn = config.get("host"), config.get("port"), config.get("fqdn")
    if not host and not fqdn:
        raise ConfigError("the combiner config names no host (give the dict that assign() returned)")
    try:
        port_number = int(port) if port is not None else 443
    except (TypeError, ValueError):
        raise ConfigError(f"the combiner config's port is not a number: {port!r}") from None
    return combiner_address(str(host or fqdn), port_number, str(fqdn) if fqdn else None)
