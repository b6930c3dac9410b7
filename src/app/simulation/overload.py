"""Simulated clients' warnings as one line every few seconds, and the verdict when the run cannot go on.

Thousands of clients falling behind together wrote one line each per event (418,000
WARNING lines, 93 MB, for 5,000 clients): unreadable, and the writing itself slowed the
run. ``OverloadReport`` takes every WARNING/ERROR record logged inside a simulated client
(its log context's client id starts ``sim-``) off the log handlers, counts it by what it
says, and prints one line every ``PERIOD`` seconds: how many, from how many clients, how
far the event loop is behind, and what to do. When the clients are dropping their
connections or the loop is behind by more than a call's deadline, it says the run cannot
go on and sets the stop event; ``simulate`` then exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator

from ...domain.observe import log_context

log = logging.getLogger("fedclient.simulate")

PERIOD = 5.0
# Deadline of a combiner call (the gRPC connector's rpc_timeout): a loop further behind fails every call.
CALL_DEADLINE = 30.0
# Share of the clients that lost their connection within one period that ends the run.
LOST_SHARE = 0.10
ADVICE = "run fewer clients in this process (--clients), or split them over several processes"
# When this process keeps up and the calls still fail, the limit is the server's (FEDn 0.33's
# combiner: 350 gRPC threads, one held by each task stream).
SERVER_ADVICE = "add combiners, or simulate fewer clients per combiner (FEDn 0.33: under 350 each)"
# What a client's line says, by how it starts (the message as written: the redaction filter
# formats it, so the numbers are in it).
_LABELS = tuple(
    (re.compile(pattern), label)
    for pattern, label in (
        (r"heartbeat \d+/\d+ missed", "heartbeats missed"),
        (r"connection to \S+ lost", "connections lost (heartbeats missed in a row)"),
        (r"task stream to \S+ lost", "task streams lost"),
        (r"combiner \S+ closed the task stream", "task streams closed"),
        (r"could not send status", "statuses not sent"),
        (r"the running task did not finish within", "tasks cut short by the stop (grace over)"),
        (r"cannot connect to combiner", "connections refused"),
        (r"outbox: \d+ result\(s\) not delivered", "results not delivered at the stop"),
        (r"outbox: \S+ \S+ left unconfirmed", "results left unconfirmed (their send was cut short)"),
    )
)
LOST = "connections lost (heartbeats missed in a row)"


_ID = re.compile(r"\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b|\b[0-9a-f]{8}\b", re.IGNORECASE)
_CODE = re.compile(
    r"\b(DEADLINE_EXCEEDED|CANCELLED|UNAVAILABLE|RESOURCE_EXHAUSTED|UNAUTHENTICATED|UNKNOWN)\b"
)


def _label(record: logging.LogRecord) -> str:
    """What happened, with the gRPC status it ended in (which limit: deadline, cancelled...)."""
    message = record.getMessage()
    code = _CODE.search(message)
    why = f", {code.group(1)}" if code else ""
    for pattern, label in _LABELS:
        if pattern.match(message):
            return label + why
    first = _ID.sub("<id>", message.split(":")[0])  # "model 3f2a…-…": one label for every model
    return re.sub(r"\d+", "N", first)[:60] + why


class OverloadReport(logging.Filter):
    """Counts simulated clients' warnings instead of printing them; ``line()`` sums a period up."""

    def __init__(self, clients: int, stop: asyncio.Event) -> None:
        super().__init__()
        self.clients = clients
        self.stop = stop
        self.failed: str | None = None  # why the run could not go on
        self.lines = 0  # aggregated lines written
        self.swallowed = 0  # client lines counted instead of written
        self._counts: Counter[str] = Counter()
        self._who: dict[str, set[str]] = {}
        self.lag = 0.0
        self._last: logging.LogRecord | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        context = getattr(record, "context", None) or log_context()
        client = context.get("client_id", "")
        if not client.startswith("sim-"):
            return True
        if record is self._last:  # the same record at the next handler: counted once
            return False
        self._last = record
        label = _label(record)
        self._counts[label] += 1
        self._who.setdefault(label, set()).add(client)
        self.swallowed += 1
        return False

    def flush(self, final: bool = False) -> None:
        """Write the period's line (if anything happened), and stop the run if it cannot go on."""
        if not self._counts:
            return
        parts = [f"{n} {label} ({len(self._who[label])} clients)" for label, n in self._counts.most_common()]
        lost = sum(len(who) for label, who in self._who.items() if label.startswith(LOST))
        self._counts.clear()
        self._who.clear()
        behind = f"; the event loop is {self.lag:.1f} s behind" if self.lag >= 1.0 else ""
        what = "at the stop" if final else f"in the last {PERIOD:.0f} s"
        self.lines += 1
        log.warning("%d simulated clients %s: %s%s", self.clients, what, ", ".join(parts), behind)
        if final or self.stop.is_set():
            return
        if lost >= max(1, LOST_SHARE * self.clients) or self.lag > CALL_DEADLINE:
            why = (
                f"{lost} of {self.clients} clients lost their connection within {PERIOD:.0f} s"
                if lost >= max(1, LOST_SHARE * self.clients)
                else f"the event loop is {self.lag:.0f} s behind, past the {CALL_DEADLINE:.0f} s deadline"
            )
            if self.lag >= 1.0:  # this process is the one behind
                self.failed = f"this process cannot keep {self.clients} clients going: {why}; {ADVICE}"
            else:  # this process keeps up: the server does not answer
                who = f"the combiner does not keep up with {self.clients} clients"
                self.failed = f"{who}: {why}; {SERVER_ADVICE}"
            log.error("simulate cannot go on: %s", self.failed)
            self.lines += 1
            self.stop.set()
        elif self.lag >= 1.0:
            log.warning("the clients fall behind (one core's worth of work): %s", ADVICE)
            self.lines += 1

    async def watch(self) -> None:
        """Every ``PERIOD`` s: measure how late the loop wakes up, write the period's line."""
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(PERIOD)
            self.lag = time.monotonic() - t0 - PERIOD
            self.flush()


@contextlib.contextmanager
def aggregated_client_logs(report: OverloadReport) -> Iterator[OverloadReport]:
    """While open, simulated clients' warnings go to ``report`` instead of the log handlers."""
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(report)
    try:
        yield report
    finally:
        for handler in handlers:
            handler.removeFilter(report)
        report.flush(final=True)
