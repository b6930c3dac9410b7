"""Values the client reasons about: who it is, where it is sent, what it is asked to do."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TaskFailed
from .results import BackwardOutcome, ForwardOutcome, TaskResult, TrainingOutcome


@dataclass(frozen=True)
class Identity:
    """A client's human-readable name and its stable id (the id is what the combiner keys on)."""

    name: str
    client_id: str


class PackageMode(enum.Enum):
    REMOTE = "remote"
    LOCAL = "local"


@dataclass(frozen=True)
class AssignmentRequest:
    identity: Identity
    package: PackageMode
    preferred_combiner: str | None = None


@dataclass(frozen=True)
class CombinerAddress:
    """A combiner as the controller named it, and where to connect to it.

    ``dial`` is set by the transport's conversions when the connection goes somewhere else
    than ``host:port`` (a public name on another port); ``host``/``port`` stay as assigned.
    """

    host: str
    port: int
    fqdn: str | None = None
    dial: tuple[str, int] | None = None

    @property
    def target(self) -> str:
        """Where to dial, as ``host:port``."""
        host, port = self.dial or (self.host, self.port)
        return f"{host}:{port}"

    @property
    def dial_port(self) -> int:
        return self.dial[1] if self.dial else self.port


@dataclass(frozen=True)
class FetchedPackage:
    """The answer to a package download: the file written, or None when the server said the
    version we already have (``unchanged_tag``) is still current; ``tag`` names this version."""

    path: Path | None
    tag: str | None = None


class AssignmentStatus(enum.Enum):
    ASSIGNED = "assigned"
    TRY_AGAIN = "try_again"
    UNAUTHORIZED = "unauthorized"
    UNMATCHED_CONFIG = "unmatched_config"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Assignment:
    status: AssignmentStatus
    message: str = ""
    combiner: CombinerAddress | None = None
    client_id: str | None = None
    helper_type: str = ""
    retry_after: float | None = None  # TRY_AGAIN/UNREACHABLE: the server's Retry-After, seconds
    refreshable: bool = True  # UNAUTHORIZED: could a fresh token help (401), or not (403)?


class TaskKind(enum.Enum):
    TRAIN = "train"
    VALIDATE = "validate"
    PREDICT = "predict"
    FORWARD = "forward"  # split learning: compute this client's embeddings
    BACKWARD = "backward"  # split learning: apply the gradients for those embeddings
    UNSUPPORTED = "unsupported"  # a request type this client cannot run: answered with a FAILED status


@dataclass(frozen=True)
class Task:
    """One request from the combiner, in our own terms (the transport's conversions type it).

    ``data`` is the raw request payload, opaque here: results echo it back to the
    combiner, which reads it. ``sender_name`` is the combiner that asked, whom results
    are addressed to. ``request_problem`` says why the payload is unusable (set by the
    transport), so that the task fails visibly instead of running on a config nobody sent.
    """

    kind: TaskKind
    model_id: str
    session_id: str = ""
    correlation_id: str = ""
    data: str = ""
    sender_name: str = ""
    round_id: str = ""
    round_timeout: float | None = None  # seconds, when the round has a usable one
    client_settings: Mapping[str, Any] = field(default_factory=dict)
    sl_inference: bool = False  # a FORWARD task for split-learning inference (validation), not training
    request_problem: str | None = None
    # For UNSUPPORTED: how the request's type was named on the wire, for the error message.
    type_name: str = ""

    @property
    def problem(self) -> str | None:
        """Why this request cannot be served as sent (it then fails, visibly), or None."""
        return model_id_problem(self.model_id) or self.request_problem


MAX_MODEL_ID_CHARS = 256


def model_id_problem(model_id: str) -> str | None:
    """What is wrong with a requested model id, or None when it is usable."""
    if not model_id or len(model_id) > MAX_MODEL_ID_CHARS or not model_id.isprintable():
        return f"the request names no usable model id ({model_id[:80]!r})"
    return None


@dataclass(frozen=True)
class ModelUpdate:
    """A finished local training run (or a forward pass's embeddings), ready for the combiner.

    ``task_data`` is the request's raw payload, echoed back (the combiner reads the round from it).
    """

    model_id: str
    model_update_id: str
    outcome: TrainingOutcome | ForwardOutcome
    receiver_name: str
    correlation_id: str = ""
    session_id: str = ""
    task_data: str = ""


@dataclass(frozen=True)
class BackwardCompletion:
    """A split-learning backward pass that finished: the gradients were applied locally."""

    gradient_id: str
    outcome: BackwardOutcome
    receiver_name: str
    correlation_id: str = ""
    session_id: str = ""
    task_data: str = ""


@dataclass(frozen=True)
class ResourceUsage:
    """How busy the machine is, in percent (system-wide, as FEDn's client reports it).

    None means the value could not be measured on this platform.
    """

    cpu_percent: float | None = None
    memory_percent: float | None = None

    @property
    def empty(self) -> bool:
        return self.cpu_percent is None and self.memory_percent is None


@dataclass(frozen=True)
class Validation:
    model_id: str
    metrics: Mapping[str, Any]
    receiver_name: str
    correlation_id: str = ""
    session_id: str = ""


@dataclass(frozen=True)
class Prediction:
    model_id: str
    output: Mapping[str, Any]
    receiver_name: str
    correlation_id: str = ""
    prediction_id: str = ""


@dataclass(frozen=True)
class MetricReport:
    """Numbers the user's code logs during a task (``log_metric``), with the task's context."""

    metrics: Mapping[str, float]
    step: int
    model_id: str = ""
    round_id: str = ""
    session_id: str = ""


@dataclass(frozen=True)
class AttributeReport:
    """Facts about the client the user's code reports (``log_attributes``): key -> text."""

    attributes: Mapping[str, str]


def check_training_metadata(metadata: object, where: str) -> dict[str, Any]:
    """The training metadata a trainer returned, if it says how many examples it trained on.

    The combiner weighs updates by ``num_examples`` and drops an update without it,
    so a missing or non-numeric count fails the task here, with a message saying why.
    """
    if not isinstance(metadata, Mapping):
        raise TaskFailed(f"{where}: the training metadata must be a mapping, got {type(metadata).__name__}")
    examples = metadata.get("num_examples")
    if isinstance(examples, bool) or not isinstance(examples, (int, float)) or not examples >= 0:
        raise TaskFailed(f"{where} needs 'num_examples' as a number >= 0, got {examples!r}")
    return dict(metadata)


class Stage(enum.Enum):
    """Where a task is, as reported to the combiner."""

    RECEIVED = "received"
    STARTED = "started"  # the user's code is about to run (after the download, when there is one)
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class TaskStatus:
    """A report about a task for the combiner's records; its transport phrases it.

    DONE carries the task's ``result`` (and for an update the id it was sent as);
    FAILED carries the ``error`` (already scrubbed of secrets).
    """

    stage: Stage
    task: Task
    result: TaskResult | None = None
    result_id: str = ""
    error: str = ""

    @property
    def failure(self) -> str:
        """The failure in one line, as it is logged and reported."""
        return failure_message(self.task, self.error)

    def describe(self) -> str:
        """A short description for log lines about the report itself."""
        return f"{self.task.kind.value} {self.stage.value} (model {self.task.model_id})"


def failure_message(task: Task, error: str) -> str:
    return f"{task.kind.value} task for model {task.model_id} failed: {error}"
