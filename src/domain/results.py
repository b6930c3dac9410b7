"""What a task produced, typed: the transport's conversions spell it the way its server reads it.

Timings are seconds on the monotonic clock. A training outcome is made when the trainer
finishes; the upload time is added when the model goes up (by the outbox, possibly after
a restart), so an outcome without one has not been uploaded yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingOutcome:
    """A local training run: the trainer's metadata (``num_examples``...) and how long each step took."""

    metadata: Mapping[str, Any]
    fetch: float  # downloading the global model
    execute: float  # the user's training code
    upload: float | None = None  # sending the new model up; None until it went up

    @property
    def processing(self) -> float | None:
        """The whole task's time (fetch + execute + upload), once the upload is known."""
        if self.upload is None:
            return None
        return self.fetch + self.execute + self.upload


@dataclass(frozen=True)
class ForwardOutcome:
    """A split-learning forward pass: the embeddings' metadata, and how long it took.

    Nothing is downloaded for it; ``processing`` runs from the start of the pass to the end of
    the upload (both None until the embeddings went up).
    """

    metadata: Mapping[str, Any]
    execute: float
    upload: float | None = None
    processing: float | None = None


@dataclass(frozen=True)
class BackwardOutcome:
    """A split-learning backward pass that succeeded: the gradients' download and their application."""

    fetch: float
    execute: float


@dataclass(frozen=True)
class ValidationOutcome:
    """The metrics the user's validation code reported."""

    metrics: Mapping[str, Any]


@dataclass(frozen=True)
class PredictionOutcome:
    """What the user's prediction code produced."""

    output: Mapping[str, Any]


TaskResult = TrainingOutcome | ForwardOutcome | BackwardOutcome | ValidationOutcome | PredictionOutcome
