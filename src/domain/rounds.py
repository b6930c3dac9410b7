"""Which training round is current, as far as this client can tell from the tasks it receives.

FEDn 0.33's combiner queues every model update it gets and averages whatever is
in the queue when a round closes: an update that arrives after its own round
closed is averaged into the *next* round. So the client itself must know when
a round is over. It learns it two ways: a training task for a newer round of
the same session, and the round's own deadline (the round_timeout the combiner
waits, counted from when the task reached us).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .model import Task, TaskKind

# How many (session, round) openings are remembered; older ones are forgotten first.
REMEMBERED_ROUNDS = 256


def round_number(round_id: str) -> int | None:
    try:
        return int(round_id)
    except (TypeError, ValueError):
        return None


def round_timeout(task: Task) -> float | None:
    """The round's timeout in seconds, if the request gave a usable (positive) one."""
    value = task.round_timeout
    return value if value is not None and value > 0 else None


@dataclass(frozen=True)
class RoundKey:
    session_id: str
    round_id: str


class RoundWatch:
    """Remembers, per session, the newest training round seen and when each round reached us."""

    def __init__(self, remember: int = REMEMBERED_ROUNDS) -> None:
        self._newest: OrderedDict[str, int] = OrderedDict()
        self._opened: OrderedDict[RoundKey, float] = OrderedDict()
        self._remember = remember

    def saw(self, task: Task, now: float) -> None:
        """Note a task; only training tasks with a numeric round_id move the round on."""
        if task.kind is not TaskKind.TRAIN:
            return
        number = round_number(task.round_id)
        if number is None:
            return
        key = RoundKey(task.session_id, task.round_id)
        self._opened.setdefault(key, now)
        self._opened.move_to_end(key)
        if number > self._newest.get(task.session_id, -1):
            self._newest[task.session_id] = number
        self._newest.move_to_end(task.session_id)
        for table in (self._opened, self._newest):
            while len(table) > self._remember:
                table.popitem(last=False)

    def opened_at(self, task: Task) -> float | None:
        return self._opened.get(RoundKey(task.session_id, task.round_id))

    def newer_round(self, session_id: str, round_id: str) -> int | None:
        """The newer round of this session already seen, if ``round_id`` is superseded."""
        number = round_number(round_id)
        newest = self._newest.get(session_id)
        if number is None or newest is None or newest <= number:
            return None
        return newest
