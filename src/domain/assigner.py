"""Getting a combiner from the controller: the assignment request, its waits and retries, and the
re-assignment budget; a refused token is renewed once through the shared ``Credentials``.

The ``Assigner`` answers with what the controller gave (``Assigned``); it keeps nothing of it.
Who is attached where is the session's business (``domain.session``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from .credentials import Credentials
from .errors import AuthError, ConfigError, TransientError
from .model import Assignment, AssignmentRequest, AssignmentStatus, CombinerAddress, Identity
from .observe import bind_log_context
from .plan import ClientPlan
from .ports import Clock, Discovery, Random
from .retry import attempt_of, giving_up, may_retry, next_delay
from .stopping import Stopped, pause
from .wording import no_controller_message

# The lifecycle's logger: these lines keep the `logger` they have always had (docs/OPERATING.md).
log = logging.getLogger("fedclient.lifecycle")


@dataclass(frozen=True)
class Assigned:
    """The controller's answer: the combiner, and the identity when the controller gave another id."""

    answer: Assignment
    combiner: CombinerAddress
    identity: Identity | None  # None: the controller kept the plan's client id (or gave none)


@dataclass
class Assigner:
    plan: ClientPlan
    discovery: Discovery | None
    credentials: Credentials
    clock: Clock
    random: Random

    async def assign(self, stop: asyncio.Event | None = None, budget: int | None = None) -> Assigned | None:
        """Ask the controller for a combiner until it gives one or says no.

        With a ``budget`` (re-assignment) at most that many requests are made and None
        is returned when they run out, so the caller can go back to its old combiner.
        Without one, "try again" is waited out (FEDn says it while it is starting) and
        an unreachable controller is retried ``unreachable_retry`` times. Setting ``stop``
        ends the waits with ``Stopped``.
        """
        if self.discovery is None:
            raise ConfigError(no_controller_message(self.plan.setting_names))
        stop = stop or asyncio.Event()
        plan = self.plan
        request = AssignmentRequest(plan.identity, plan.package_mode, plan.preferred_combiner)
        asks = waits = unreachable = 0
        started = self.clock.monotonic()
        while True:
            if stop.is_set():
                raise Stopped
            asks += 1
            seen = self.credentials.version
            answer = await self.discovery.assign(request)
            if answer.status is AssignmentStatus.ASSIGNED:
                return self._assigned(answer, asks, started)
            if answer.status is AssignmentStatus.UNAUTHORIZED:
                refused = AuthError(
                    f"the controller refused the client: {answer.message or 'unauthorized'}",
                    refreshable=answer.refreshable,
                )
                if await self.credentials.renew(seen, refused):
                    asks -= 1  # the same question again, now with the new token
                    continue
                raise self.credentials.final(refused)
            if answer.status is AssignmentStatus.UNMATCHED_CONFIG:
                raise ConfigError(f"the controller cannot take this client: {answer.message}")
            # With a budget (re-assignment) the asks are bounded by it; otherwise "try again" is
            # waited out for as long as it takes and only unreachable tries have a limit.
            if answer.status is AssignmentStatus.TRY_AGAIN:
                waits += 1
                delay = next_delay(waits, plan.assign_retry, answer.retry_after, self.random.uniform())
                tries = f"attempt {asks} of {budget}" if budget is not None else f"attempt {asks}"
                log.info("controller says try again (%s); %s, waiting %.1f s", answer.message, tries, delay)
            else:
                unreachable += 1
                retry = plan.unreachable_retry
                if not may_retry(unreachable, retry):
                    raise TransientError(
                        f"the controller stayed unreachable after {unreachable} tries: {answer.message}"
                    )
                delay = next_delay(unreachable, retry, answer.retry_after, self.random.uniform())
                if budget is not None:
                    tries, outlook = f"attempt {asks} of {budget}", ""
                else:
                    tries = attempt_of(unreachable, retry)
                    outlook = giving_up(unreachable, delay, retry, "it stays unreachable")
                log.warning(
                    "controller unreachable (%s); %s, retrying in %.1f s%s",
                    answer.message,
                    tries,
                    delay,
                    outlook,
                )
            if budget is not None and asks >= budget:
                return None
            await pause(stop, self.clock, delay)

    def _assigned(self, answer: Assignment, asks: int, started: float) -> Assigned:
        if answer.combiner is None:
            raise ConfigError("the controller assigned no combiner address")
        identity = None
        if answer.client_id and answer.client_id != self.plan.identity.client_id:
            identity = Identity(self.plan.identity.name, answer.client_id)
            bind_log_context(client_id=answer.client_id)
        if asks > 1:
            log.info("controller answered after %d tries, %.0f s", asks, self.clock.monotonic() - started)
        log.info("assigned to combiner %s", answer.combiner.target)
        return Assigned(answer, answer.combiner, identity)
