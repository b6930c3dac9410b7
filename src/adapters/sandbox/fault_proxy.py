"""A TCP proxy on 127.0.0.1 that breaks connections on demand, for fault-injection tests and the soak bench.

Put it between a client and a (sandbox) combiner; it forwards bytes both ways
until told to:

- ``cut()``: close every connection (FIN), as a peer that went away;
- ``reset()``: abort every connection with RST, as a crashed host or a firewall;
- ``blackhole()``: keep connections open but forward nothing (bytes are held, as TCP
  holds them on a dead link, and flow again on ``restore()``);
- ``slow(delay)``: forward with a pause per chunk, as a congested link;
- ``cut_after(n, "up"|"down")``: cut (or reset) once ``n`` more bytes went that way (mid-stream);
- ``restore()``: forward normally again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field

_READ = 64 * 1024


@dataclass
class _Trigger:
    direction: str
    remaining: int
    hard: bool


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.delay = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections = 0
        self.bytes = {"up": 0, "down": 0}
        self.faults: list[str] = []
        self._pairs: set[_Pair] = set()
        self._trigger: _Trigger | None = None
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        self._drop_all(hard=False)

    # ----------------------------------------------------------------- faults --

    def cut(self) -> None:
        self.faults.append("cut")
        self._drop_all(hard=False)

    def reset(self) -> None:
        self.faults.append("reset")
        self._drop_all(hard=True)

    def blackhole(self) -> None:
        self.faults.append("blackhole")
        self._flowing.clear()

    def slow(self, delay: float) -> None:
        self.faults.append(f"slow {delay:g}s")
        self.delay = delay

    def cut_after(self, nbytes: int, direction: str = "up", hard: bool = False) -> None:
        if direction not in ("up", "down"):
            raise ValueError("direction is 'up' (to the server) or 'down' (to the client)")
        self._trigger = _Trigger(direction, nbytes, hard)

    def restore(self) -> None:
        self.delay, self._trigger = 0.0, None
        self._flowing.set()

    # ------------------------------------------------------------- forwarding --

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer, hard=False)
            return
        self.connections += 1
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        pair.pumps = [
            asyncio.create_task(self._pump(reader, up_writer, "up", pair)),
            asyncio.create_task(self._pump(up_reader, writer, "down", pair)),
        ]
        await asyncio.gather(*pair.pumps, return_exceptions=True)
        self._close(pair, hard=False)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str, pair: _Pair
    ) -> None:
        try:
            while True:
                data = await reader.read(_READ)
                if not data:
                    break
                await self._flowing.wait()  # held while blackholed; reading stops, so the sender stalls
                if self.delay:
                    await asyncio.sleep(self.delay)
                trigger = self._trigger
                if trigger is not None and trigger.direction == direction:
                    if len(data) >= trigger.remaining:
                        writer.write(data[: trigger.remaining])
                        self._trigger = None
                        self.faults.append(f"{'reset' if trigger.hard else 'cut'} mid-stream ({direction})")
                        self._drop_all(hard=trigger.hard)
                        return
                    trigger.remaining -= len(data)
                self.bytes[direction] += len(data)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._close(pair, hard=False)

    def _drop_all(self, hard: bool) -> None:
        for pair in list(self._pairs):
            self._close(pair, hard)

    def _close(self, pair: _Pair, hard: bool) -> None:
        if pair not in self._pairs:
            return
        self._pairs.discard(pair)
        for writer in (pair.client, pair.server):
            _abort(writer, hard)
        for pump in pair.pumps:
            if pump is not asyncio.current_task():
                pump.cancel()


def _abort(writer: asyncio.StreamWriter, hard: bool) -> None:
    with contextlib.suppress(Exception):
        if hard:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()
