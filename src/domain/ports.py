"""The Protocols the lifecycle depends on. Adapters implement them; fakes live in testing.fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .extract_dir import MergeReport
from .model import (
    Assignment,
    AssignmentRequest,
    AttributeReport,
    BackwardCompletion,
    CombinerAddress,
    FetchedPackage,
    Identity,
    MetricReport,
    ModelUpdate,
    Prediction,
    ResourceUsage,
    Task,
    TaskStatus,
    Validation,
)
from .package import Manifest
from .package_cache import KeptPackage


class Discovery(Protocol):
    """The controller: asks which combiner to use."""

    async def assign(self, request: AssignmentRequest) -> Assignment: ...


class PackageSource(Protocol):
    """Where the compute package comes from (the controller, for a remote package)."""

    async def download(self, dest_dir: Path) -> Path:
        """Download the active package into ``dest_dir`` (created if missing); return the file written."""
        ...

    async def fetch(self, dest_dir: Path, unchanged_tag: str | None = None) -> FetchedPackage:
        """Like ``download``, but writes nothing when the server says ``unchanged_tag`` is current."""
        ...

    async def checksum(self) -> str | None:
        """The server's SHA-256 of the active package, or None if it has none."""
        ...


class PackageCache(Protocol):
    """The compute package kept from the last start (the rules: ``domain.package_cache``).

    Blocking file work; the domain names the directory and runs the slow calls off the loop.
    """

    def lookup(self, directory: Path) -> KeptPackage | None:
        """The package the record in ``directory`` names, if the record is sound and the file is there."""
        ...

    def keep(self, directory: Path, archive: Path, sha256: str, tag: str | None) -> Path:
        """Move ``archive`` into ``directory``, replacing the last one, and record it; return its new path."""
        ...

    def discard(self, archive: Path) -> None:
        """Remove a download that is not kept (one already gone is fine)."""
        ...


class PackageUnpacker(Protocol):
    """Turns a downloaded archive into a directory holding fedn.yaml, safely."""

    def sha256(self, path: Path) -> str: ...

    def unpack(self, archive: Path, dest_dir: Path) -> Path:
        """Extract ``archive`` into ``dest_dir``; return the directory containing fedn.yaml."""
        ...

    def unpack_over(self, archive: Path, target: Path, record: Path) -> MergeReport:
        """Extract ``archive`` over ``target`` (the site's extract dir), keeping run-time files.

        Every member is checked before ``target`` is touched; files the previous version
        shipped (as ``record`` says) and this one does not are removed (domain.extract_dir).
        """
        ...

    def load_manifest(self, package_dir: Path) -> Manifest: ...


class TaskSource(Protocol):
    """The combiner's side of the conversation, for one client identity."""

    def tasks(self) -> AsyncIterator[Task]:
        """Subscribe and yield tasks until the stream ends.

        Raises StreamEnded when the combiner closes it, TransientError when the
        connection fails, AuthError when the combiner refuses our credentials.
        """
        ...

    async def heartbeat(self, usage: ResourceUsage | None = None) -> None:
        """Tell the combiner we are alive (with the machine's CPU/memory use when known)."""
        ...

    async def send_telemetry(self, usage: ResourceUsage) -> None: ...

    async def send_status(self, report: TaskStatus) -> None: ...

    async def send_update(self, update: ModelUpdate) -> None: ...

    async def send_validation(self, validation: Validation) -> None: ...

    async def send_prediction(self, prediction: Prediction) -> None: ...

    async def send_metric(self, report: MetricReport) -> None:
        """What the user's code logged with ``log_metric`` during a task."""
        ...

    async def send_attributes(self, report: AttributeReport) -> None:
        """What the user's code reported with ``log_attributes``."""
        ...

    async def send_backward_completion(self, completion: BackwardCompletion) -> None: ...


class ModelTransfer(Protocol):
    """Moves model files between the combiner and local disk, never whole in memory."""

    async def download(self, model_id: str, dest: Path) -> int:
        """Stream model ``model_id`` into ``dest``; return the number of bytes written.

        Raises ModelNotFound when the combiner has no such model.
        """
        ...

    async def upload(self, model_id: str, src: Path) -> int:
        """Stream ``src`` up as model ``model_id``; return the number of bytes sent."""
        ...

    async def has_model(self, model_id: str) -> bool:
        """Whether the combiner holds model ``model_id`` now (asks for it, reads at most one chunk)."""
        ...


class CombinerLink(TaskSource, ModelTransfer, Protocol):
    """One open connection to a combiner, bound to one client identity."""

    async def close(self) -> None: ...


class CombinerConnector(Protocol):
    async def connect(self, address: CombinerAddress, identity: Identity) -> CombinerLink: ...


class Scratch(Protocol):
    """Private working directories: one per task, for its model files and outputs."""

    def make(self, parent: Path, prefix: str) -> Path:
        """A new empty directory in ``parent`` (created if missing), its name ``prefix`` and a unique tail."""
        ...

    def remove(self, directory: Path) -> None:
        """Delete ``directory`` and all it holds, ignoring errors (blocking: run off the event loop)."""
        ...


class Trainer(Protocol):
    """Runs the user's code on local data."""

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Train from ``in_model`` into ``out_model``; return the training metadata (num_examples…)."""
        ...

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]: ...

    async def startup(self) -> None:
        """Run the package's `startup` entry point once, before any task (only called if it has one)."""
        ...

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, Any]: ...

    async def forward(self, client_id: str, out_embeddings: Path, sl_inference: bool) -> dict[str, Any]:
        """Split learning: write this client's embeddings to ``out_embeddings``; return their metadata."""
        ...

    async def backward(self, in_gradients: Path, client_id: str) -> None:
        """Split learning: apply the gradients in ``in_gradients`` to the local model."""
        ...


@runtime_checkable
class HelperAwareTrainer(Protocol):
    """A Trainer that must know the model helper in force (the privacy guard reads numpyhelper only).

    The lifecycle calls ``use_helper`` once the helper is chosen (the client's setting, else
    the controller's, else numpyhelper), before the first task.
    """

    def use_helper(self, helper_type: str) -> None: ...


@runtime_checkable
class PreparedTrainer(Protocol):
    """A Trainer with work to do once before the first task (e.g. build the package's python_env).

    The lifecycle awaits ``prepare()`` right after building the trainer; an error stops the client.
    """

    async def prepare(self) -> None: ...


class TrainerFactory(Protocol):
    """Builds the Trainer for a ready package (its directory and parsed manifest)."""

    def __call__(self, package_dir: Path, manifest: Manifest) -> Trainer: ...


@runtime_checkable
class LeftoverSweeper(Protocol):
    """A TrainerFactory that can end what an earlier run of the client left running.

    Entry points of a client that was killed (SIGKILL, the OOM killer) may outlive it. The
    lifecycle calls ``sweep()`` once at start, before the package is unpacked, so no old
    entry point still runs in the directory the new package is put into (docs/SECURITY.md).
    """

    def sweep(self) -> None: ...


class TokenRefresher(Protocol):
    """Exchanges the configured refresh token for a new access token."""

    async def refresh(self) -> str:
        """The new access token. AuthError if the refresh token is refused, TransientError if unreachable."""
        ...


ShutdownHook = Callable[[], Awaitable[None]]
"""Run once when the client stops, after the last task and before the channels close (bounded)."""


class Ids(Protocol):
    """Fresh ids, drawn only through here so a test can replay a run."""

    def new_id(self) -> str:
        """A new id no other client or run will draw (a UUID4 string, as FEDn names models)."""
        ...


class Random(Protocol):
    """Randomness, drawn only through here so a test can replay a run."""

    def uniform(self) -> float:
        """A number in [0, 1): where a backoff falls within its jitter band."""
        ...


class Clock(Protocol):
    """Time, read and waited for only through here, so a test can replay a run."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: durations, backoffs, cooldowns."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch: round deadlines and result ages, which outlive a process."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class TextRecord(Protocol):
    """One small text record kept durably (the privacy ledger): read it whole, replace it whole."""

    where: str  # names it in messages (a file's path)

    def read(self) -> str | None:
        """The text, or None when there is none yet (OSError / UnicodeDecodeError when unreadable)."""
        ...

    def replace(self, text: str) -> None:
        """Replace it atomically and durably before returning (OSError when that fails)."""
        ...
