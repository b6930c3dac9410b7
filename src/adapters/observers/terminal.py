"""On a terminal: rich progress bars for transfers and one live status line under them.

Log lines keep flowing above the bars: while the display is live, rich redirects
stderr, and our log handler writes to whatever sys.stderr is at that moment.
"""

from __future__ import annotations

from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Task as Row
from rich.text import Text

from ...domain.observe import Link, NullObserver, Transfer, TransferKind
from ...domain.status import StatusBoard, human_bytes, status_line


class _Rate(ProgressColumn):
    """Transfer rate in binary units (MiB/s), like the summary lines."""

    def render(self, task: Row) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:
            speed = task.completed / task.elapsed
        return Text("-" if speed is None else f"{human_bytes(speed)}/s", style="progress.data.speed")


class _Bar:
    def __init__(self, progress: Progress, task: TaskID, live: Live) -> None:
        self._progress, self._task, self._live = progress, task, live

    def advance(self, nbytes: int) -> None:
        self._progress.advance(self._task, nbytes)

    def finish(self, ok: bool) -> None:
        # Draw the finished bar once, so even a transfer shorter than a refresh tick is seen.
        if ok:
            done = self._progress.tasks[self._task_index()].completed
            self._progress.update(self._task, total=done, completed=done)
            self._live.refresh()
        self._progress.remove_task(self._task)

    def _task_index(self) -> int:
        return next(i for i, t in enumerate(self._progress.tasks) if t.id == self._task)


class _StatusLine:
    def __init__(self, board: StatusBoard) -> None:
        self._board = board

    def __rich__(self) -> Text:
        snap = self._board.snapshot
        style = "green" if snap.link is Link.CONNECTED else "yellow"
        return Text(status_line(self._board), style=style)


class TerminalDisplay(NullObserver):  # only transfers are shown here; the rest is a no-op
    """An Observer drawing bars; the status line reads the board on every refresh."""

    def __init__(self, board: StatusBoard, stream: IO[str]) -> None:
        self.console = Console(file=stream, force_terminal=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            _Rate(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._live = Live(
            Group(self.progress, _StatusLine(board)),
            console=self.console,
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=True,
            transient=True,
        )

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()

    def __enter__(self) -> TerminalDisplay:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def transfer(self, kind: TransferKind, name: str, total: int | None) -> Transfer:
        # Model ids are UUIDs: 8 hex digits tell them apart. Package names stay readable.
        label = name[:24] if kind is TransferKind.PACKAGE_DOWNLOAD else name[:8]
        task = self.progress.add_task(f"{kind.value} {label}", total=total)
        return _Bar(self.progress, task, self._live)
