"""In-memory fakes for every domain port. They keep state so tests assert on what happened.

They behave like the real adapters (stream files, refuse unknown models, honour
scripted failures) without sockets or subprocesses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapters.package_merge import merge_into
from ..domain.credentials import Credentials
from ..domain.errors import (
    AuthError,
    DeliveryUncertain,
    FedClientError,
    ModelNotFound,
    PackageError,
    StreamEnded,
    TaskFailed,
    TransientError,
)
from ..domain.extract_dir import MergeReport
from ..domain.model import (
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
from ..domain.observe import NULL_OBSERVER, Link, Observer, TransferKind
from ..domain.outbox import OutboxEntry
from ..domain.package import MANIFEST_NAME, Manifest, parse_manifest
from ..domain.privacy import PrivacySpent
from ..domain.usage import UsageReading


class InMemoryDiscovery:
    """Answers assignment requests from a script of answers (the last one repeats)."""

    def __init__(self, *answers: Assignment) -> None:
        self.answers: deque[Assignment] = deque(answers)
        self.requests: list[AssignmentRequest] = []

    async def assign(self, request: AssignmentRequest) -> Assignment:
        self.requests.append(request)
        if len(self.answers) > 1:
            return self.answers.popleft()
        return self.answers[0]


class InMemoryPackageSource:
    """Serves one package file (or none), an optional checksum and a version tag (like an ETag).

    ``fetches`` records the tag every fetch asked about (None: unconditional).
    """

    def __init__(
        self, archive: Path | None, checksum: str | None = None, filename: str = "package.tgz"
    ) -> None:
        self.archive = archive
        self.server_checksum = checksum
        self.filename = filename
        self.downloads = 0
        self.fetches: list[str | None] = []
        self.tags = True  # False: a server that sends no version tag

    def tag(self) -> str | None:
        if self.archive is None or not self.tags:
            return None
        return '"' + hashlib.sha256(self.archive.read_bytes()).hexdigest()[:16] + '"'

    async def download(self, dest_dir: Path) -> Path:
        fetched = await self.fetch(dest_dir)
        assert fetched.path is not None
        return fetched.path

    async def fetch(self, dest_dir: Path, unchanged_tag: str | None = None) -> FetchedPackage:
        self.fetches.append(unchanged_tag)
        if self.archive is None:
            raise PackageError("the controller has no active compute package")
        if unchanged_tag is not None and unchanged_tag == self.tag():
            return FetchedPackage(None, unchanged_tag)
        self.downloads += 1
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / self.filename
        shutil.copyfile(self.archive, dest)
        return FetchedPackage(dest, self.tag())

    async def checksum(self) -> str | None:
        return self.server_checksum


class InMemoryUnpacker:
    """Treats the 'archive' as a JSON document {relative path: text} and writes it out."""

    def __init__(self) -> None:
        self.unpacked: list[Path] = []

    def sha256(self, path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def unpack(self, archive: Path, dest_dir: Path) -> Path:
        files: dict[str, str] = json.loads(archive.read_text())
        if dest_dir.exists():
            shutil.rmtree(dest_dir)
        for rel, text in files.items():
            target = dest_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.unpacked.append(dest_dir)
        return self._root(dest_dir)

    def unpack_over(self, archive: Path, target: Path, record: Path) -> MergeReport:
        """Written to a staging directory beside ``target``, then merged in by the real merge."""
        staging = target.parent / f".{target.name}.memory-staging"
        try:
            root = self.unpack(archive, staging)
            return merge_into(staging, root, target, record)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _root(directory: Path) -> Path:
        for candidate in sorted(directory.rglob(MANIFEST_NAME)):
            return candidate.parent
        raise PackageError("the compute package has no fedn.yaml")

    def load_manifest(self, package_dir: Path) -> Manifest:
        path = package_dir / MANIFEST_NAME
        if not path.exists():
            raise PackageError(f"no {MANIFEST_NAME} in {package_dir}")
        return parse_manifest(json.loads(path.read_text()), str(path))


@dataclass
class InMemoryCombiner:
    """The combiner side: a model store, per-client task queues, and records of what clients sent."""

    models: dict[str, bytes] = field(default_factory=dict)
    queues: dict[str, asyncio.Queue[Task | None]] = field(default_factory=dict)
    statuses: list[TaskStatus] = field(default_factory=list)
    updates: list[ModelUpdate] = field(default_factory=list)
    validations: list[Validation] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    heartbeats: list[str] = field(default_factory=list)
    metrics: list[MetricReport] = field(default_factory=list)
    attributes: list[AttributeReport] = field(default_factory=list)
    heartbeat_usage: list[ResourceUsage | None] = field(default_factory=list)
    telemetry: list[tuple[str, ResourceUsage]] = field(default_factory=list)
    backward_completions: list[BackwardCompletion] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    connects: list[tuple[CombinerAddress, Identity]] = field(default_factory=list)
    # Every call a client made, in order, failed or not: (call name, model/update id or "").
    subjects: list[tuple[str, str]] = field(default_factory=list)
    # Scripted failures: number of upcoming calls of that name that raise before taking effect.
    fail_next: dict[str, int] = field(default_factory=dict)
    # Number of upcoming calls of that name that take effect, then lose their reply (DeliveryUncertain).
    lose_reply_next: dict[str, int] = field(default_factory=dict)
    fail_with: dict[str, Exception] = field(default_factory=dict)
    refuse_connects: int = 0
    chunk_size: int = 4
    # Every call as it was attempted, failed or not: (name, token it carried). Duplicates show here.
    attempts: list[tuple[str, str | None]] = field(default_factory=list)
    # When set, only these tokens are accepted (checked per call, and once when a task stream opens).
    valid_tokens: set[str] | None = None

    def queue(self, client_id: str) -> asyncio.Queue[Task | None]:
        return self.queues.setdefault(client_id, asyncio.Queue())

    def submit(self, client_id: str, task: Task) -> None:
        self.queue(client_id).put_nowait(task)

    def end_stream(self, client_id: str) -> None:
        self.queue(client_id).put_nowait(None)

    def check(self, name: str, token: str | None = None, subject: str = "") -> None:
        self.attempts.append((name, token))
        self.subjects.append((name, subject))
        if self.valid_tokens is not None and token not in self.valid_tokens:
            raise AuthError("the combiner refused the token: Invalid token")
        left = self.fail_next.get(name, 0)
        if left:
            self.fail_next[name] = left - 1
            raise self.fail_with.get(name, TransientError(f"{name}: scripted failure"))

    def reply(self, name: str) -> None:
        """Called after a call took effect: maybe lose its reply."""
        left = self.lose_reply_next.get(name, 0)
        if left:
            self.lose_reply_next[name] = left - 1
            raise DeliveryUncertain(f"{name}: the reply was lost")

    def tries(self, name: str, subject: str | None = None) -> int:
        return sum(1 for n, s in self.subjects if n == name and (subject is None or s == subject))


class InMemoryLink:
    def __init__(
        self,
        combiner: InMemoryCombiner,
        identity: Identity,
        credentials: Credentials | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.combiner = combiner
        self.identity = identity
        self.observer = observer
        self.closed = False
        self._credentials = credentials or Credentials(None)

    def _check(self, name: str, subject: str = "") -> None:
        self.combiner.check(name, self._credentials.token, subject)

    async def tasks(self) -> AsyncIterator[Task]:
        queue = self.combiner.queue(self.identity.client_id)
        self._check("tasks")  # a stream's token is checked when it opens, as gRPC interceptors do
        while True:
            if self.combiner.fail_next.get("tasks"):
                self.combiner.check("tasks")
            task = await queue.get()
            if task is None:
                raise StreamEnded("the combiner closed the task stream")
            yield task

    async def heartbeat(self, usage: ResourceUsage | None = None) -> None:
        self._check("heartbeat")
        self.combiner.heartbeats.append(self.identity.client_id)
        self.combiner.heartbeat_usage.append(usage)

    async def send_telemetry(self, usage: ResourceUsage) -> None:
        self._check("send_telemetry")
        self.combiner.telemetry.append((self.identity.client_id, usage))

    async def send_backward_completion(self, completion: BackwardCompletion) -> None:
        self._check("send_backward_completion")
        self.combiner.backward_completions.append(completion)

    async def send_status(self, report: TaskStatus) -> None:
        self._check("send_status")
        self.combiner.statuses.append(report)

    async def send_update(self, update: ModelUpdate) -> None:
        self._check("send_update", update.model_update_id)
        if update.model_update_id not in self.combiner.models:
            raise TransientError(f"update {update.model_update_id} refers to a model that was never uploaded")
        self.combiner.updates.append(update)
        self.combiner.reply("send_update")

    async def send_validation(self, validation: Validation) -> None:
        self._check("send_validation", validation.model_id)
        self.combiner.validations.append(validation)
        self.combiner.reply("send_validation")

    async def send_prediction(self, prediction: Prediction) -> None:
        self._check("send_prediction", prediction.model_id)
        self.combiner.predictions.append(prediction)

    async def send_metric(self, report: MetricReport) -> None:
        self.combiner.check("send_metric")
        self.combiner.metrics.append(report)

    async def send_attributes(self, report: AttributeReport) -> None:
        self.combiner.check("send_attributes")
        self.combiner.attributes.append(report)

    async def download(self, model_id: str, dest: Path) -> int:
        self._check("download", model_id)
        if model_id not in self.combiner.models:
            raise ModelNotFound(f"the combiner has no model {model_id}")
        data = self.combiner.models[model_id]
        progress = self.observer.transfer(TransferKind.MODEL_DOWNLOAD, model_id, None)
        with dest.open("wb") as out:
            for start in range(0, len(data), self.combiner.chunk_size):
                out.write(data[start : start + self.combiner.chunk_size])
                progress.advance(len(data[start : start + self.combiner.chunk_size]))
        progress.finish(True)
        return len(data)

    async def upload(self, model_id: str, src: Path) -> int:
        self._check("upload", model_id)
        data = src.read_bytes()
        progress = self.observer.transfer(TransferKind.MODEL_UPLOAD, model_id, len(data))
        self.combiner.uploads.append(model_id)
        self.combiner.models[model_id] = data
        self.combiner.reply("upload")
        progress.advance(len(data))
        progress.finish(True)
        return len(data)

    async def has_model(self, model_id: str) -> bool:
        self._check("has_model", model_id)
        return model_id in self.combiner.models

    async def close(self) -> None:
        self.closed = True


class InMemoryConnector:
    def __init__(
        self,
        combiner: InMemoryCombiner,
        credentials: Credentials | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.combiner = combiner
        self.observer = observer
        self.credentials = credentials
        self.links: list[InMemoryLink] = []

    async def connect(self, address: CombinerAddress, identity: Identity) -> InMemoryLink:
        self.combiner.connects.append((address, identity))
        if self.combiner.refuse_connects:
            self.combiner.refuse_connects -= 1
            raise TransientError(f"connection to {address.target} refused")
        if "connect" in self.combiner.fail_with:
            raise self.combiner.fail_with["connect"]
        link = InMemoryLink(self.combiner, identity, self.credentials, self.observer)
        self.links.append(link)
        return link


class InMemoryOutboxStore:
    """Keeps outbox entries in a dict (model files in a real directory) and records every operation."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.entries: dict[str, OutboxEntry] = {}
        self.operations: list[tuple[str, str]] = []  # ("save" | "remove", key)

    def save(self, entry: OutboxEntry, model: Path | None = None) -> None:
        self.operations.append(("save", entry.key))
        if model is not None:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model, self.model_file(entry.key))
        self.entries[entry.key] = entry

    def load(self) -> list[OutboxEntry]:
        return list(self.entries.values())

    def model_file(self, key: str) -> Path:
        return self.model_dir / f"{key}.model"

    def remove(self, key: str) -> None:
        self.operations.append(("remove", key))
        self.entries.pop(key, None)
        self.model_file(key).unlink(missing_ok=True)


class FakeScratch:
    """Task directories with predictable names (``train-1``, ``validate-2``…) in a real directory.

    Records each one made and removed, so a test can replay a run and check the clean-up.
    """

    def __init__(self) -> None:
        self.made: list[Path] = []
        self.removed: list[Path] = []

    def make(self, parent: Path, prefix: str) -> Path:
        parent.mkdir(parents=True, exist_ok=True)
        number = len(self.made)
        while True:
            number += 1
            path = parent / f"{prefix}{number}"
            try:
                path.mkdir()
            except FileExistsError:  # left by another run in the same directory
                continue
            self.made.append(path)
            return path

    def remove(self, directory: Path) -> None:
        self.removed.append(directory)
        shutil.rmtree(directory, ignore_errors=True)


class InMemoryTrainer:
    """'Trains' by appending a byte to the model; validates by reporting its length."""

    def __init__(self, num_examples: int = 10, fail: str | None = None) -> None:
        self.num_examples = num_examples
        self.fail = fail
        self.calls: list[tuple[str, Path, dict[str, Any]]] = []

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.calls.append(("train", in_model, dict(client_settings)))
        if self.fail == "train":
            raise TaskFailed("train exited with code 1")
        out_model.write_bytes(in_model.read_bytes() + b"+")
        return {"num_examples": self.num_examples}

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        self.calls.append(("validate", in_model, {}))
        if self.fail == "validate":
            raise TaskFailed("validate exited with code 1")
        return {"accuracy": len(in_model.read_bytes()) / 100}

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        self.calls.append(("predict", in_model, {}))
        return {"prediction": len(in_model.read_bytes())}

    async def forward(self, client_id: str, out_embeddings: Path, sl_inference: bool) -> dict[str, Any]:
        self.calls.append(("forward", out_embeddings, {"client_id": client_id, "sl_inference": sl_inference}))
        if self.fail == "forward":
            raise TaskFailed("forward exited with code 1")
        out_embeddings.write_bytes(f"embeddings of {client_id}".encode())
        return {"num_examples": self.num_examples}

    async def backward(self, in_gradients: Path, client_id: str) -> None:
        self.calls.append(
            ("backward", in_gradients, {"client_id": client_id, "gradients": in_gradients.read_bytes()})
        )
        if self.fail == "backward":
            raise TaskFailed("backward exited with code 1")

    async def startup(self) -> None:
        self.calls.append(("startup", Path(), {}))
        if self.fail == "startup":
            raise TaskFailed("startup exited with code 1")


class InMemoryTrainerFactory:
    def __init__(self, trainer: InMemoryTrainer) -> None:
        self.trainer = trainer
        self.built: list[tuple[Path, Manifest]] = []

    def __call__(self, package_dir: Path, manifest: Manifest) -> InMemoryTrainer:
        self.built.append((package_dir, manifest))
        return self.trainer


class InMemoryTokenRefresher:
    """Mints ``token-1``, ``token-2``, … and makes ``combiner`` accept each; records every call."""

    def __init__(self, combiner: InMemoryCombiner | None = None, prefix: str = "token-") -> None:
        self.combiner = combiner
        self.prefix = prefix
        self.calls = 0
        self.issued: list[str] = []
        self.fail_with: FedClientError | None = None
        self.gate: asyncio.Event | None = None  # set to hold refreshes until it is set

    async def refresh(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        token = f"{self.prefix}{len(self.issued) + 1}"
        self.issued.append(token)
        if self.combiner is not None and self.combiner.valid_tokens is not None:
            self.combiner.valid_tokens.add(token)
        return token


class FakeClock:
    """Time advances only when someone sleeps; sleeping yields to the event loop.

    The wall clock (``time()``) is ``wall``: the real time when the fake was made, unless
    given, and it stands still until a test moves it. Sleeps move only the monotonic clock,
    so results a test stamps with the real time do not expire while fake heartbeats spin.
    """

    def __init__(self, wall: float | None = None) -> None:
        self.now = 0.0
        self.wall = time.time() if wall is None else wall
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        # A real (tiny) pause, so loops that sleep do not starve the rest of the event loop.
        await asyncio.sleep(0.001)


class CountingIds:
    """Ids that replay: ``id-1``, ``id-2``… (give each simulated process its own ``prefix``)."""

    def __init__(self, prefix: str = "id") -> None:
        self.prefix = prefix
        self.issued: list[str] = []

    def new_id(self) -> str:
        self.issued.append(f"{self.prefix}-{len(self.issued) + 1}")
        return self.issued[-1]


class SeededRandom:
    """The same draws for the same seed, so backoff jitter replays."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)  # noqa: S311 - test jitter, not crypto

    def uniform(self) -> float:
        return self._random.random()


class RecordingObserver:
    """The observer port's fake: records every event, transfers included, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def transfer(self, kind: TransferKind, name: str, total: int | None) -> RecordingTransfer:
        self.events.append(("transfer", kind, name, total))
        return RecordingTransfer(self.events)

    def link(self, state: Link, combiner: str | None) -> None:
        self.events.append(("link", state, combiner))

    def heartbeat(self, ok: bool) -> None:
        self.events.append(("heartbeat", ok))

    def task_started(self, task: Task) -> None:
        self.events.append(("started", task.kind))

    def task_finished(self, task: Task, ok: bool) -> None:
        self.events.append(("finished", task.kind, ok))

    def privacy_spent(self, spent: PrivacySpent) -> None:
        self.events.append(("privacy", spent))


class RecordingTransfer:
    def __init__(self, events: list[tuple[object, ...]]) -> None:
        self._events = events

    def advance(self, nbytes: int) -> None:
        self._events.append(("advance", nbytes))

    def finish(self, ok: bool) -> None:
        self._events.append(("finish", ok))


class ScriptedUsageProbe:
    """A UsageProbe that plays back readings (the last one repeats)."""

    def __init__(self, *readings: UsageReading | OSError) -> None:
        self.readings: deque[UsageReading | OSError] = deque(readings or (UsageReading(),))

    def read(self) -> UsageReading:
        reading = self.readings.popleft() if len(self.readings) > 1 else self.readings[0]
        if isinstance(reading, OSError):
            raise reading
        return reading
