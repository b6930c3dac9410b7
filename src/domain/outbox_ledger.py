"""What the outbox holds: its records, the store they live in, and what became of each result.

``OutboxLedger`` is the outbox's bookkeeping: the results pending delivery (kept in the
store, durably, and in memory), and the history and counts of how each one ended. The
rules for sending them are ``domain.outbox``'s.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import FedClientError
from .results import TrainingOutcome, ValidationOutcome

log = logging.getLogger("fedclient.outbox")

HISTORY = 256


class ResultKind(enum.Enum):
    UPDATE = "update"
    VALIDATION = "validation"


class Delivery(enum.Enum):
    DELIVERED = "delivered"
    DROPPED = "dropped"
    UNCERTAIN = "uncertain"  # may have arrived; not resent by design
    PENDING = "pending"  # still in the outbox, waiting for a connection


class RoundGone(FedClientError):
    """The combiner no longer holds what the result belongs to: its round is over."""


@dataclass(frozen=True)
class OutboxEntry:
    key: str  # unique per result (the task's correlation id)
    kind: ResultKind
    model_id: str  # the global model the task was about
    receiver_name: str
    correlation_id: str
    session_id: str
    round_id: str
    payload: TrainingOutcome | ValidationOutcome
    created_at: float  # wall clock, seconds
    expires_at: float  # wall clock: after this the result's round is closed
    uploaded_id: str = ""  # updates: the model id the combiner acknowledged an upload of
    has_model: bool = False  # updates: the store holds the model file
    sending: bool = False  # the message call may have left (set durably before it is made)
    task_data: str = ""  # the request's raw payload, echoed back with an update


class OutboxStore(Protocol):
    """Where outbox entries live. Every method is blocking file work (the outbox runs it in a thread).

    A store that outlives the process serialises entries in a format of its own and keeps
    reading what earlier versions of it wrote: a restart never loses a finished result.
    """

    def save(self, entry: OutboxEntry, model: Path | None = None) -> None:
        """Write ``entry`` durably, replacing an older version; ``model`` is moved in with it."""
        ...

    def load(self) -> list[OutboxEntry]:
        """Every complete entry; half-written leftovers of a crash are discarded."""
        ...

    def model_file(self, key: str) -> Path: ...

    def remove(self, key: str) -> None: ...


@dataclass(frozen=True)
class OutboxEvent:
    key: str
    kind: ResultKind
    outcome: Delivery
    reason: str = ""
    result_id: str = ""  # updates: the model_update_id that was sent
    correlation_id: str = ""


@dataclass
class OutboxLedger:
    """The pending results (in the store and in memory) and the record of how each one ended."""

    store: OutboxStore
    history: deque[OutboxEvent] = field(default_factory=lambda: deque(maxlen=HISTORY))
    counts: dict[Delivery, int] = field(default_factory=lambda: dict.fromkeys(Delivery, 0))
    _pending: dict[str, OutboxEntry] = field(default_factory=dict)

    def pending(self) -> list[OutboxEntry]:
        return sorted(self._pending.values(), key=lambda e: e.created_at)

    def get(self, key: str) -> OutboxEntry | None:
        return self._pending.get(key)

    def outcome_of(self, key: str) -> Delivery:
        for event in reversed(self.history):
            if event.key == key:
                return event.outcome
        return Delivery.DELIVERED

    def result_id(self, key: str) -> str:
        """The model_update_id a delivered update was sent as ("" if unknown)."""
        for event in reversed(self.history):
            if event.key == key:
                return event.result_id
        return ""

    async def load(self) -> list[OutboxEntry]:
        """What a previous run left in the store, now pending here too."""
        entries = await asyncio.to_thread(self.store.load)
        for entry in entries:
            self._pending[entry.key] = entry
        return entries

    async def save(self, entry: OutboxEntry, model: Path | None = None) -> OutboxEntry:
        """Write ``entry`` durably (a new result, or a new version of a pending one)."""
        await asyncio.to_thread(self.store.save, entry, model)
        self._pending[entry.key] = entry
        return entry

    def model_file(self, key: str) -> Path:
        return self.store.model_file(key)

    async def finish(self, entry: OutboxEntry, outcome: Delivery, reason: str = "") -> Delivery:
        """``entry`` is done with: out of the store, its outcome recorded (and logged if not delivered)."""
        await asyncio.to_thread(self.store.remove, entry.key)
        current = self._pending.pop(entry.key, entry)
        self.counts[outcome] += 1
        self.history.append(
            OutboxEvent(entry.key, entry.kind, outcome, reason, current.uploaded_id, entry.correlation_id)
        )
        if outcome is Delivery.DROPPED:
            log.warning("outbox: dropped %s %s: %s", entry.kind.value, entry.key, reason)
        elif outcome is Delivery.UNCERTAIN:
            log.warning("outbox: %s %s left unconfirmed: %s", entry.kind.value, entry.key, reason)
        return outcome
