"""Who holds the combiner connection: the lifecycle sets it, tasks borrow it.

One owner (the lifecycle's reconnect loop) replaces the link; a task that needs
the combiner while the connection is down waits for the next one instead of
failing at once, so a combiner restart does not cost a finished update.
"""

from __future__ import annotations

import asyncio

from .errors import TransientError
from .ports import CombinerLink


class LinkHolder:
    def __init__(self, wait_limit: float = 600.0) -> None:
        self.wait_limit = wait_limit
        self._link: CombinerLink | None = None
        self._ready = asyncio.Event()

    def current(self) -> CombinerLink | None:
        return self._link

    def set(self, link: CombinerLink) -> None:
        self._link = link
        self._ready.set()

    def take(self) -> CombinerLink | None:
        """Forget the current link (the caller closes it)."""
        link, self._link = self._link, None
        self._ready.clear()
        return link

    async def wait(self) -> CombinerLink:
        """The current link, waiting up to ``wait_limit`` seconds for a reconnect."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_limit
        while self._link is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TransientError(f"no connection to the combiner for {self.wait_limit:.0f} s")
            try:
                await asyncio.wait_for(self._ready.wait(), remaining)
            except TimeoutError:
                continue
        return self._link
