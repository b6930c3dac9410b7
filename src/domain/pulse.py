"""The signs of life sent on an open connection: heartbeats (which end a dead session) and telemetry.

``Pulse`` belongs to the session supervisor (``domain.session``): its loops run beside
the task stream of each connection and are cancelled with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .errors import AuthError, FedClientError, TransientError
from .links import LinkHolder
from .observe import Observer
from .plan import ClientPlan
from .ports import Clock
from .usage import UsageMeter, UsageProbe

# The lifecycle's logger: these lines keep the `logger` they have always had (docs/OPERATING.md).
log = logging.getLogger("fedclient.lifecycle")


@dataclass
class Pulse:
    plan: ClientPlan  # heartbeat_interval, heartbeat_miss_limit, telemetry_interval
    links: LinkHolder
    observer: Observer
    clock: Clock
    usage_probe: UsageProbe | None = None  # None: heartbeats carry no usage, no telemetry is sent
    # One meter per loop, made at start, so the first CPU figure covers the time since then.
    _beat_meter: UsageMeter | None = field(default=None, init=False)
    _telemetry_meter: UsageMeter | None = field(default=None, init=False)

    def start(self) -> None:
        """The client starts: CPU figures count from now."""
        if self.usage_probe is not None:
            self._beat_meter, self._telemetry_meter = (
                UsageMeter(self.usage_probe),
                UsageMeter(self.usage_probe),
            )

    async def heartbeats(self) -> None:
        """Beat every interval; ``heartbeat_miss_limit`` misses in a row end the session (reconnect)."""
        misses = 0
        limit = self.plan.heartbeat_miss_limit
        meter = self._beat_meter
        while True:
            link = self.links.current()
            try:
                if link is None:
                    raise TransientError("not connected")
                await link.heartbeat(meter.sample() if meter is not None else None)
                self.observer.heartbeat(True)
                if misses:
                    log.info("heartbeat back after %d misses", misses)
                misses = 0
            except TransientError as exc:
                misses += 1
                self.observer.heartbeat(False)
                if misses >= limit:
                    raise TransientError(f"{misses} heartbeats in a row missed (last: {exc})") from None
                log.warning("heartbeat %d/%d missed: %s", misses, limit, exc)
            await self.clock.sleep(self.plan.heartbeat_interval)

    async def telemetry(self) -> None:
        """Send CPU and memory use now and then every telemetry_interval, while connected."""
        meter, failures = self._telemetry_meter, 0
        if meter is None or self.plan.telemetry_interval <= 0:
            return
        while True:
            usage = meter.sample()
            link = self.links.current()
            if link is not None and not usage.empty:
                try:
                    await link.send_telemetry(usage)
                    failures = 0
                except AuthError:
                    return  # the heartbeat sees the same refusal and ends the session
                except FedClientError as exc:
                    failures += 1
                    if failures == 1:
                        log.warning("telemetry not sent: %s", exc)
            await self.clock.sleep(self.plan.telemetry_interval)
