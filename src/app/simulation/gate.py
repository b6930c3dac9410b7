"""Simulated clients take turns on the combiner: at most ``CALLS_IN_FLIGHT`` task calls of a group at once.

When a round starts, every client of a group gets its task at the same moment and each
sends some ten calls for it (statuses, the model download and upload, the result). With
5,000 clients in one process those 50,000 calls all went to gRPC together, the event loop
(~1,000 calls a second, client and sandbox combiner) worked through them for minutes, and
everything queued past 30 s ended DEADLINE_EXCEEDED: heartbeats, statuses, downloads. The
round never finished.

``GatedConnector`` wraps the group's connector: a task's calls wait their turn here, before
they are sent, so a call's deadline only runs while it is really in flight and the loop has
room for the heartbeats, which never wait (they are what keeps a client online). A task's
latency includes its wait, as it should: that is what the combiner would see.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ...domain.model import CombinerAddress, Identity
from ...domain.ports import CombinerConnector, CombinerLink

# Task calls of one group in flight at once (heartbeats and the task stream are not counted).
CALLS_IN_FLIGHT = 48
_GATED = (
    "send_status",
    "send_update",
    "send_validation",
    "send_prediction",
    "send_metric",
    "send_attributes",
    "send_backward_completion",
    "download",
    "upload",
    "has_model",
)


class CallGate:
    """A group's turns: ``waiting`` calls queued for one of ``limit`` slots."""

    def __init__(self, limit: int = CALLS_IN_FLIGHT) -> None:
        self.limit = limit
        self.waiting = 0
        self._slots = asyncio.Semaphore(limit)

    async def run(self, call: Any) -> Any:
        self.waiting += 1
        try:
            await self._slots.acquire()
        except BaseException:
            call.close()  # never awaited: no "coroutine was never awaited" warning
            raise
        finally:
            self.waiting -= 1
        try:
            return await call
        finally:
            self._slots.release()


class _GatedLink:
    def __init__(self, link: CombinerLink, gate: CallGate) -> None:
        self._link = link
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._link, name)
        if name not in _GATED:
            return attr

        async def gated(*args: Any, **kwargs: Any) -> Any:
            return await self._gate.run(attr(*args, **kwargs))

        return gated

    async def download(self, model_id: str, dest: Path) -> int:
        got: int = await self._gate.run(self._link.download(model_id, dest))
        return got

    async def upload(self, model_id: str, src: Path) -> int:
        sent: int = await self._gate.run(self._link.upload(model_id, src))
        return sent


class GatedConnector:
    """The group's connector, whose links' task calls take turns on one ``CallGate``."""

    def __init__(self, connector: CombinerConnector, gate: CallGate) -> None:
        self._connector = connector
        self.gate = gate

    async def connect(self, address: CombinerAddress, identity: Identity) -> CombinerLink:
        link = await self._connector.connect(address, identity)
        return _GatedLink(link, self.gate)  # type: ignore[return-value]
