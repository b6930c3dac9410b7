"""How an outbox entry is written to disk, and read back, including what earlier versions wrote.

Format 2 (this one) stores the typed result: ``{"format": 2, ..., "payload": {"metadata":
..., "fetch": ..., "execute": ...}}`` for an update, ``{"metrics": ...}`` for a validation,
and the request's raw payload as ``task_data``. Entries without ``format`` were written
before it (format 1): their payload is the update's meta in FEDn's layout (or the bare
metrics), read here so that a restart after an upgrade still delivers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain.outbox import OutboxEntry, ResultKind
from ..domain.results import TrainingOutcome, ValidationOutcome
from .combiner_grpc.vocabulary import training_outcome_of

FORMAT = 2
_FIELDS = (
    "key",
    "model_id",
    "receiver_name",
    "correlation_id",
    "session_id",
    "round_id",
    "created_at",
    "expires_at",
    "uploaded_id",
    "has_model",
    "sending",
    "task_data",
)


def entry_to_json(entry: OutboxEntry) -> dict[str, Any]:
    data: dict[str, Any] = {"format": FORMAT, "kind": entry.kind.value}
    data.update({name: getattr(entry, name) for name in _FIELDS})
    if isinstance(entry.payload, TrainingOutcome):
        outcome = entry.payload
        data["payload"] = {
            "metadata": dict(outcome.metadata),
            "fetch": outcome.fetch,
            "execute": outcome.execute,
        }
    else:
        data["payload"] = {"metrics": dict(entry.payload.metrics)}
    return data


def entry_from_json(data: Mapping[str, Any]) -> OutboxEntry:
    """An entry as written by this version or an earlier one (ValueError/TypeError/KeyError if unusable)."""
    fields = {name: data[name] for name in _FIELDS if name in data}
    kind = ResultKind(data["kind"])
    payload = data["payload"]
    if not isinstance(payload, Mapping):
        raise ValueError(f"the payload is not an object: {payload!r}")
    version = data.get("format", 1)
    if version == 1:
        if kind is ResultKind.UPDATE:
            outcome, fields["task_data"] = training_outcome_of(payload)
            return OutboxEntry(kind=kind, payload=outcome, **fields)
        return OutboxEntry(kind=kind, payload=ValidationOutcome(dict(payload)), **fields)
    if version != FORMAT:
        raise ValueError(f"written in outbox format {version!r}, which this version cannot read")
    if kind is ResultKind.UPDATE:
        metadata = payload["metadata"]
        if not isinstance(metadata, Mapping):
            raise ValueError(f"the training metadata is not an object: {metadata!r}")
        training = TrainingOutcome(dict(metadata), float(payload["fetch"]), float(payload["execute"]))
        return OutboxEntry(kind=kind, payload=training, **fields)
    metrics = payload["metrics"]
    if not isinstance(metrics, Mapping):
        raise ValueError(f"the metrics are not an object: {metrics!r}")
    return OutboxEntry(kind=kind, payload=ValidationOutcome(dict(metrics)), **fields)
