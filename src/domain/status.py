"""The client's live status, kept from observer events, and fanned out to whatever shows it.

``StatusBoard`` is itself an Observer: the lifecycle reports to it, it keeps the
figures an operator asks for (connected? to which combiner? doing what? last
heartbeat? tasks done and failed? bytes moved?) and passes every event on to
its displays (a terminal, log lines, a metrics exporter).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .model import Task, TaskKind
from .observe import Link, Observer, Transfer, TransferKind
from .privacy import PrivacySpent
from .state import STATE_FOR_TASK, ClientState


@dataclass
class TransferTotals:
    count: int = 0
    nbytes: int = 0
    seconds: float = 0.0


@dataclass
class Snapshot:
    link: Link = Link.DISCONNECTED
    combiner: str | None = None
    state: ClientState = ClientState.IDLE
    session_id: str = ""
    round_id: str = ""
    last_heartbeat: float | None = None  # monotonic time of the last answered heartbeat
    heartbeats_missed: int = 0
    connects: int = 0
    tasks: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, ok|failed) -> n
    transfers: dict[TransferKind, TransferTotals] = field(
        default_factory=lambda: {k: TransferTotals() for k in TransferKind}
    )
    privacy: PrivacySpent | None = None  # None: the site policy has no privacy section

    @property
    def connected(self) -> bool:
        return self.link is Link.CONNECTED

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def done(self) -> int:
        return sum(n for (_, outcome), n in self.tasks.items() if outcome == "ok")

    def failed(self) -> int:
        return sum(n for (_, outcome), n in self.tasks.items() if outcome == "failed")


class _Fanout:
    def __init__(self, board: StatusBoard, kind: TransferKind, parts: list[Transfer]) -> None:
        self._board, self._kind, self._parts = board, kind, parts
        self._started = board.now()
        self._bytes = 0

    def advance(self, nbytes: int) -> None:
        self._bytes += nbytes
        for part in self._parts:
            part.advance(nbytes)

    def finish(self, ok: bool) -> None:
        totals = self._board.snapshot.transfers[self._kind]
        totals.count += 1
        totals.nbytes += self._bytes
        totals.seconds += self._board.now() - self._started
        for part in self._parts:
            part.finish(ok)


class StatusBoard:
    def __init__(self, displays: Sequence[Observer] = (), *, now: Callable[[], float]) -> None:
        """``now``: seconds on a monotonic clock (a Clock's ``monotonic``), for ages and durations."""
        self.displays = list(displays)
        self.now = now
        self.snapshot = Snapshot()

    def heartbeat_age(self) -> float | None:
        last = self.snapshot.last_heartbeat
        return None if last is None else max(0.0, self.now() - last)

    def healthy(self, stale_after: float) -> bool:
        """Connected, and the combiner answered a heartbeat within ``stale_after`` seconds."""
        if not self.snapshot.connected:
            return False
        age = self.heartbeat_age()
        return age is not None and age <= stale_after

    # ---------------------------------------------------------- Observer --

    def transfer(self, kind: TransferKind, name: str, total: int | None) -> Transfer:
        return _Fanout(self, kind, [d.transfer(kind, name, total) for d in self.displays])

    def link(self, state: Link, combiner: str | None) -> None:
        snap = self.snapshot
        if state is Link.CONNECTED:
            snap.connects += 1
            # A fresh connection counts as a fresh sign of life.
            snap.last_heartbeat = self.now()
        snap.link, snap.combiner = state, combiner or snap.combiner
        for display in self.displays:
            display.link(state, combiner)

    def heartbeat(self, ok: bool) -> None:
        if ok:
            self.snapshot.last_heartbeat = self.now()
        else:
            self.snapshot.heartbeats_missed += 1
        for display in self.displays:
            display.heartbeat(ok)

    def task_started(self, task: Task) -> None:
        snap = self.snapshot
        snap.state = STATE_FOR_TASK.get(task.kind, snap.state)  # an unsupported task changes nothing
        snap.session_id = task.session_id or snap.session_id
        snap.round_id = task.round_id or (snap.round_id if task.kind is not TaskKind.TRAIN else "")
        for display in self.displays:
            display.task_started(task)

    def task_finished(self, task: Task, ok: bool) -> None:
        self.snapshot.state = ClientState.IDLE
        self.snapshot.tasks[(task.kind.value, "ok" if ok else "failed")] += 1
        for display in self.displays:
            display.task_finished(task, ok)

    def privacy_spent(self, spent: PrivacySpent) -> None:
        self.snapshot.privacy = spent
        for display in self.displays:
            display.privacy_spent(spent)


# ------------------------------------------------------------- formatting --

_VERBS = {
    TransferKind.PACKAGE_DOWNLOAD: "downloaded",
    TransferKind.MODEL_DOWNLOAD: "downloaded",
    TransferKind.MODEL_UPLOAD: "uploaded",
}


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns at GiB


def transfer_summary(kind: TransferKind, nbytes: int, seconds: float) -> str:
    """'downloaded 512 MiB in 1.4 s, 366 MiB/s'."""
    rate = human_bytes(nbytes / seconds) + "/s" if seconds > 0 else "-"
    return f"{_VERBS[kind]} {human_bytes(nbytes)} in {seconds:.1f} s, {rate}"


def status_line(board: StatusBoard) -> str:
    """One line: connection, ClientState, session and round, last heartbeat, tasks done and failed."""
    snap = board.snapshot
    where = f" {snap.combiner}" if snap.combiner else ""
    age = board.heartbeat_age()
    beat = "no heartbeat yet" if age is None else f"heartbeat {age:.0f} s ago"
    session = f"session {snap.session_id}" if snap.session_id else "no session"
    rnd = f" round {snap.round_id}" if snap.round_id else ""
    privacy = ""
    if snap.privacy is not None and snap.privacy.budget is not None:
        privacy = f" | ε {snap.privacy.epsilon:.3g}/{snap.privacy.budget:g}"
    return (
        f"{snap.link.value}{where} | {snap.state.name} | {session}{rnd} | {beat} | "
        f"tasks {snap.done()} done, {snap.failed()} failed{privacy}"
    )
