"""The real clock, id source and random source behind the domain's Clock, Ids and Random ports."""

from __future__ import annotations

import asyncio
import random
import time
import uuid


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class UuidIds:
    def new_id(self) -> str:
        return str(uuid.uuid4())


class PythonRandom:
    def uniform(self) -> float:
        return random.random()  # noqa: S311 - backoff jitter, not crypto
