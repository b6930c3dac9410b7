"""A child process for tests: its stdout and stderr are read while it runs, never only at the end.

A child whose pipes nobody reads blocks in ``write()`` once they fill (64 KiB of
pipe plus what asyncio buffers), and a client blocked in a log write looks exactly
like one that ignores Ctrl-C. ``Child`` drains both pipes from the moment it starts,
keeps what was read, and when a wait times out it kills the child and fails with the
last lines it wrote, so a hang explains itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

TAIL_LINES = 40
_IGNORING_SIGINT = "; ".join(
    (
        "import os, signal, sys",
        "signal.signal(signal.SIGINT, signal.SIG_IGN)",
        "os.execv(sys.argv[1], sys.argv[1:])",
    )
)


class ChildTimeout(AssertionError):
    """The child did not exit in time; the message holds its last log lines."""


class Child:
    """One spawned process; ``stdout`` / ``stderr`` hold everything it has written so far."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self._out = bytearray()
        self._err = bytearray()
        assert proc.stdout is not None and proc.stderr is not None
        self._drains = [
            asyncio.create_task(_drain(proc.stdout, self._out)),
            asyncio.create_task(_drain(proc.stderr, self._err)),
        ]

    @classmethod
    async def start(
        cls,
        *argv: str | Path,
        cwd: Path,
        env: dict[str, str] | None = None,
        name: str | None = None,
        sigint_ignored: bool = False,
    ) -> Child:
        """Start ``argv``; ``sigint_ignored``: as a background job of a non-interactive shell starts it."""
        command = [str(a) for a in argv]
        if sigint_ignored:  # an ignored signal stays ignored across exec, as it does for a shell's job
            command = [sys.executable, "-c", _IGNORING_SIGINT, *command]
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc, name or Path(str(argv[0])).name)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def stdout(self) -> str:
        return self._out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines of stderr, then of stdout when it wrote any."""
        parts = [f"--- {self.name} (pid {self.pid}) stderr, last {lines} lines ---"]
        parts += self.stderr.splitlines()[-lines:]
        if self._out:
            parts.append(f"--- stdout, last {lines} lines ---")
            parts += self.stdout.splitlines()[-lines:]
        return "\n".join(parts)

    async def wait(self, timeout: float) -> int:
        """Wait for the exit and the end of both pipes; on timeout kill it and fail with its tail."""
        try:
            await asyncio.wait_for(self._finished(), timeout)
        except TimeoutError:
            await self.kill()
            raise ChildTimeout(f"{self.name} still ran {timeout:.0f} s later\n{self.tail()}") from None
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 30) -> int:
        """Send ``sig`` (unless it has exited already) and wait as ``wait`` does; the exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
        return await self.wait(timeout)

    async def kill(self) -> None:
        """SIGKILL the child we started (never anything looked up by name) and reap it."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finished(), 10)

    async def _finished(self) -> None:
        await self.proc.wait()
        await asyncio.gather(*self._drains)


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await stream.read(1 << 16):
        into.extend(chunk)
