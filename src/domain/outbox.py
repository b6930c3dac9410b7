"""Finished results waiting for the combiner's acknowledgement, and the rules for (re)sending them.

A finished model update or validation is written to the outbox (durably, by the
store) before the first try to send it, and removed once the combiner has
acknowledged it. Whatever is left is sent again after a reconnect and after a
restart of the process.

Delivery semantics (what FEDn 0.33's combiner does decides them, see docs/RELIABILITY.md):

- A result whose outcome is known is sent exactly once: acknowledged means
  removed; provably never sent (no connection, the call refused before it left)
  means sent again.
- An ambiguous outcome (the call left, no reply came back) is NOT sent again:
  the combiner does not deduplicate ``model_update_id``, so a second copy is
  queued and either averaged twice or stalls the round's aggregation. A
  possible loss of one client's contribution to one round is the lesser harm.
- The upload is not repeated when only ``SendModelUpdate`` failed: the combiner
  keeps an acknowledged upload until it aggregates it. After a reconnect the
  client first asks (a one-chunk download probe) whether the combiner still has
  it. A new upload always uses a fresh id: FEDn appends to a half-written file
  of the same id, and refuses a second upload of a completed one.
- A result is never delivered into a round it does not belong to: an update is
  dropped (with a log line saying why) once its round's deadline passed, a
  newer round of its session was seen, or the combiner no longer holds the
  global model the update was trained from (FEDn deletes it when the round is
  aggregated, and loses it when it restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import AuthError, DeliveryUncertain, FatalError, FedClientError, TransientError
from .links import LinkHolder
from .model import ModelUpdate, Validation
from .outbox_ledger import (
    HISTORY,
    Delivery,
    OutboxEntry,
    OutboxEvent,
    OutboxLedger,
    OutboxStore,
    ResultKind,
    RoundGone,
)
from .ports import Clock, CombinerLink, Ids, Random
from .results import TrainingOutcome, ValidationOutcome
from .retry import RetryConfig, compute_backoff
from .rounds import RoundWatch

__all__ = [
    "DEFAULT_MAX_AGE",
    "DELIVERY_RETRY",
    "HISTORY",
    "Delivery",
    "Outbox",
    "OutboxEntry",
    "OutboxEvent",
    "OutboxLedger",
    "OutboxStore",
    "ResultKind",
    "RoundGone",
    "stale_reason",
]

log = logging.getLogger("fedclient.outbox")

# How a finished result is retried, for the whole client: ClientPlan.delivery_retry (its cap is
# the site's delivery retry setting) reaches this outbox and the task calls. No attempt limit: a result is
# tried again for as long as its round's rules allow, and whatever ends it says why in the log
# (docs/RELIABILITY.md section 8). A task bounds its own direct calls (task_calls.DIRECT_ATTEMPTS).
DELIVERY_RETRY = RetryConfig(initial=1.0, maximum=30.0)
# Results with no round deadline (validations, or a round without round_timeout) are kept this long.
DEFAULT_MAX_AGE = 24 * 3600.0


def stale_reason(entry: OutboxEntry, now: float, watch: RoundWatch) -> str | None:
    """Why ``entry`` can no longer be delivered into its own round, or None if it still can."""
    what = f"round {entry.round_id}" if entry.round_id else "its round"
    if now >= entry.expires_at:
        return f"{what} is closed (its deadline passed {now - entry.expires_at:.0f} s ago)"
    if entry.kind is ResultKind.UPDATE:
        newer = watch.newer_round(entry.session_id, entry.round_id)
        if newer is not None:
            return f"{what} was superseded by round {newer}"
    return None


@dataclass
class Outbox:
    """The delivery rules over the ledger's pending results (the bookkeeping is ``OutboxLedger``'s)."""

    ledger: OutboxLedger
    links: LinkHolder
    clock: Clock
    retry: RetryConfig = DELIVERY_RETRY
    watch: RoundWatch = field(default_factory=RoundWatch)
    # After a reconnect, wait this long before resending, so that tasks the combiner queued for us
    # (a newer round that supersedes a pending update) arrive first.
    settle: float = 1.0
    ids: Ids = field(kw_only=True)  # upload ids
    random: Random = field(kw_only=True)  # backoff jitter

    def __post_init__(self) -> None:
        self._lock = asyncio.Lock()
        # The link each entry was last worked on; a different link means the combiner may have restarted.
        self._link_of: dict[str, int] = {}
        self._first_seen: tuple[int, float] = (-1, 0.0)  # (link generation, when the outbox first saw it)

    # What the ledger knows, for the client and its operator.

    @property
    def history(self) -> deque[OutboxEvent]:
        return self.ledger.history

    @property
    def counts(self) -> dict[Delivery, int]:
        return self.ledger.counts

    def result_id(self, key: str) -> str:
        """The model_update_id a delivered update was sent as ("" if unknown)."""
        return self.ledger.result_id(key)

    # ------------------------------------------------------------ contents --

    def pending(self) -> list[OutboxEntry]:
        return self.ledger.pending()

    async def load(self) -> int:
        """Take over what a previous run left; returns how many results wait for delivery."""
        entries = await self.ledger.load()
        for entry in [e for e in entries if e.sending]:
            await self._finish(
                entry,
                Delivery.UNCERTAIN,
                "the client stopped while sending it, so it may have reached the combiner; not sent "
                "again, because FEDn 0.33 does not deduplicate a repeated result",
            )
        entries = [e for e in entries if not e.sending]
        if entries:
            log.info("outbox: %d result(s) from an earlier run wait for delivery", len(entries))
        return len(entries)

    async def add(self, entry: OutboxEntry, model: Path | None = None) -> OutboxEntry:
        """Write a finished result durably before anything is sent."""
        if model is not None:
            entry = replace(entry, has_model=True)
        await self.ledger.save(entry, model)
        if self.links.current() is not None:
            self._link_of[entry.key] = self.links.generation
        return entry

    # ------------------------------------------------------------ delivery --

    async def flush(self) -> dict[Delivery, int]:
        """Try every pending result once through the delivery rules (retrying transient failures)."""
        tally = dict.fromkeys(Delivery, 0)
        for entry in self.pending():
            tally[await self.deliver(entry.key)] += 1
        return tally

    async def deliver(self, key: str) -> Delivery:
        """Deliver one result, retrying until acknowledged, dropped by the rules, or no connection."""
        async with self._lock:
            attempt = 0
            while True:
                entry = self.ledger.get(key)
                if entry is None:  # finished by someone else (a flush) while we waited for the lock
                    return self.ledger.outcome_of(key)
                if entry.sending:  # an earlier try was cut short (cancelled) while its call was out
                    return await self._finish(
                        entry,
                        Delivery.UNCERTAIN,
                        "a send of it was interrupted and may have reached the combiner; not sent again, "
                        "because FEDn 0.33 does not deduplicate a repeated result",
                    )
                reason = stale_reason(entry, self.clock.time(), self.watch)
                if reason is not None:
                    return await self._finish(entry, Delivery.DROPPED, reason)
                try:
                    link = await self.links.wait()
                except TransientError as exc:
                    log.warning("outbox: %s %s stays queued: %s", entry.kind.value, key, exc)
                    return Delivery.PENDING
                wait = self._settling(entry)
                if wait > 0:
                    await self.clock.sleep(wait)
                    continue  # the round rules again, with whatever tasks arrived meanwhile
                try:
                    await self._attempt(entry, link)
                except DeliveryUncertain as exc:
                    return await self._finish(
                        entry,
                        Delivery.UNCERTAIN,
                        f"it may have reached the combiner ({exc}); not sent again, because FEDn 0.33 "
                        "does not deduplicate a repeated result",
                    )
                except RoundGone as exc:
                    return await self._finish(entry, Delivery.DROPPED, str(exc))
                except (AuthError, FatalError):
                    raise
                except TransientError as exc:
                    attempt += 1
                    delay = compute_backoff(attempt, self.retry, self.random.uniform())
                    log.warning(
                        "outbox: sending %s %s failed (%s); retry %d in %.1f s",
                        entry.kind.value,
                        key,
                        exc,
                        attempt,
                        delay,
                    )
                    await self.clock.sleep(delay)
                    continue
                except FedClientError as exc:
                    return await self._finish(entry, Delivery.DROPPED, f"it cannot be sent: {exc}")
                if attempt:
                    log.info("outbox: %s %s delivered after %d retries", entry.kind.value, key, attempt)
                return await self._finish(entry, Delivery.DELIVERED)

    def _settling(self, entry: OutboxEntry) -> float:
        """Seconds still to wait before resending ``entry`` on a connection it has not used yet."""
        generation = self.links.generation
        if self._link_of.get(entry.key) == generation:
            return 0.0
        now = self.clock.monotonic()
        if self._first_seen[0] != generation:
            self._first_seen = (generation, now)
        return self._first_seen[1] + self.settle - now

    async def _finish(self, entry: OutboxEntry, outcome: Delivery, reason: str = "") -> Delivery:
        self._link_of.pop(entry.key, None)
        return await self.ledger.finish(entry, outcome, reason)

    async def _attempt(self, entry: OutboxEntry, link: CombinerLink) -> None:
        moved = self._link_of.get(entry.key) != self.links.generation
        self._link_of[entry.key] = self.links.generation
        if isinstance(entry.payload, ValidationOutcome):
            await self._send(
                entry,
                link.send_validation(
                    Validation(
                        entry.model_id,
                        dict(entry.payload.metrics),
                        entry.receiver_name,
                        entry.correlation_id,
                        entry.session_id,
                    )
                ),
            )
            return
        if moved:
            entry = await self._check_combiner(entry, link)
        upload_time = 0.0
        if not entry.uploaded_id:
            if not entry.has_model:
                raise RoundGone("its model file is missing from the outbox")
            upload_id = self.ids.new_id()  # fresh per try: FEDn appends to a half-written file of the same id
            started = self.clock.monotonic()
            try:
                await link.upload(upload_id, self.ledger.model_file(entry.key))
            except DeliveryUncertain as exc:  # harmless for an upload: the next try uses a new id
                raise TransientError(str(exc)) from None
            upload_time = self.clock.monotonic() - started
            entry = await self.ledger.save(replace(entry, uploaded_id=upload_id))
        if not isinstance(entry.payload, TrainingOutcome):
            raise FatalError(f"outbox entry {entry.key} is an update without a training outcome")
        await self._send(
            entry,
            link.send_update(
                ModelUpdate(
                    entry.model_id,
                    entry.uploaded_id,
                    replace(entry.payload, upload=upload_time),
                    entry.receiver_name,
                    entry.correlation_id,
                    entry.session_id,
                    task_data=entry.task_data,
                )
            ),
        )

    async def _send(self, entry: OutboxEntry, call: Coroutine[Any, Any, None]) -> None:
        """Make the message call with a durable "sending" mark around it.

        A restart that finds the mark cannot know whether the call arrived, so it
        treats the result as ambiguous. The mark is cleared when the call provably
        never left, so the next try sends it.
        """
        entry = replace(self.ledger.get(entry.key) or entry, sending=True)
        try:
            await self.ledger.save(entry)
        except BaseException:
            call.close()
            raise
        try:
            await call
        except DeliveryUncertain:
            raise
        except TransientError:
            await self.ledger.save(replace(entry, sending=False))
            raise

    async def _check_combiner(self, entry: OutboxEntry, link: CombinerLink) -> OutboxEntry:
        """On a new connection, make sure the combiner still holds what the update needs."""
        if entry.uploaded_id and await link.has_model(entry.uploaded_id):
            return entry
        if not await link.has_model(entry.model_id):
            raise RoundGone(
                f"the combiner no longer holds global model {entry.model_id} "
                "(its round was aggregated, or the combiner restarted)"
            )
        if entry.uploaded_id:
            log.info("outbox: the combiner lost upload %s; uploading again", entry.uploaded_id)
            entry = await self.ledger.save(replace(entry, uploaded_id=""))
        return entry

    async def flush_within(self, seconds: float) -> dict[Delivery, int] | None:
        """``flush()`` bounded in time (for shutdown); None if it did not finish."""
        with contextlib.suppress(asyncio.TimeoutError):
            return await asyncio.wait_for(self.flush(), seconds)
        return None
