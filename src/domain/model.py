"""Values the client reasons about: who it is, where it is sent, what it is asked to do."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TaskFailed


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
    host: str
    port: int
    fqdn: str | None = None

    @property
    def target(self) -> str:
        """Where to dial: an fqdn always means port 443 (as FEDn does)."""
        if self.fqdn:
            return f"{self.fqdn}:443"
        return f"{self.host}:{self.port}"

    @property
    def dial_port(self) -> int:
        return 443 if self.fqdn else self.port


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
    UNSUPPORTED = "unsupported"  # a request type this client cannot run: answered with an ERROR status


@dataclass(frozen=True)
class Task:
    """One request from the combiner, in our own terms.

    ``data`` is the raw request payload (for training: the round config as a JSON
    string whose values are all strings); ``config`` is its parsed form.
    ``sender_name`` is the combiner that asked, whom results are addressed to.
    """

    kind: TaskKind
    model_id: str
    session_id: str = ""
    correlation_id: str = ""
    data: str = ""
    sender_name: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    # For UNSUPPORTED: how the request's type was named on the wire, for the error message.
    type_name: str = ""

    @property
    def problem(self) -> str | None:
        """Why this request cannot be served as sent (it then fails, visibly), or None."""
        return task_problem(self.model_id, self.data)

    @property
    def round_id(self) -> str:
        return str(self.config.get("round_id", ""))

    @property
    def sl_inference(self) -> bool:
        """A FORWARD task for split-learning inference (validation), not for training.

        The server sends the flag as a JSON bool or as the text "True"/"False".
        """
        value = self.config.get("is_sl_inference", False)
        if isinstance(value, str):
            return value.strip().lower() == "true"
        return bool(value)

    @property
    def client_settings(self) -> Mapping[str, Any]:
        settings = self.config.get("client_settings", {})
        return settings if isinstance(settings, Mapping) else {}


MAX_TASK_DATA_CHARS = 1024 * 1024
MAX_MODEL_ID_CHARS = 256


def task_problem(model_id: str, data: str) -> str | None:
    """What is wrong with a TaskRequest's model id or ``data``, or None when it is usable."""
    if not model_id or len(model_id) > MAX_MODEL_ID_CHARS or not model_id.isprintable():
        return f"the request names no usable model id ({model_id[:80]!r})"
    if len(data) > MAX_TASK_DATA_CHARS:
        return f"the request data is larger than {MAX_TASK_DATA_CHARS} characters"
    if not data.strip():
        return None
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return f"the request data is not JSON: {data[:60]!r}"
    if not isinstance(parsed, dict):
        return f"the request data must be a JSON object, got {type(parsed).__name__}"
    return None


def parse_task_data(data: str) -> dict[str, Any]:
    """Parse a TaskRequest's ``data``: a JSON object, or nothing at all.

    FEDn sends an empty string for validation and a JSON object for training;
    anything else is kept raw by the caller and reads as an empty config.
    """
    if not data.strip():
        return {}
    if len(data) > MAX_TASK_DATA_CHARS:
        return {}
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class ModelUpdate:
    """A finished local training run, ready to be reported to the combiner."""

    model_id: str
    model_update_id: str
    meta: Mapping[str, Any]
    receiver_name: str
    correlation_id: str = ""
    session_id: str = ""

    def meta_json(self) -> str:
        return json.dumps(dict(self.meta))


@dataclass(frozen=True)
class BackwardCompletion:
    """A split-learning backward pass that finished: the gradients were applied locally."""

    gradient_id: str
    meta: Mapping[str, Any]
    receiver_name: str
    correlation_id: str = ""
    session_id: str = ""

    def meta_json(self) -> str:
        return json.dumps(dict(self.meta))


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


class StatusLevel(enum.Enum):
    INFO = "info"
    DEBUG = "debug"
    WARNING = "warning"
    ERROR = "error"
    AUDIT = "audit"


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


@dataclass(frozen=True)
class StatusReport:
    """A human-readable status line for the combiner's records."""

    text: str
    level: StatusLevel = StatusLevel.INFO
    kind: TaskKind | None = None
    session_id: str = ""
    correlation_id: str = ""
    data: str = ""
