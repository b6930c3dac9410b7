"""What the client is doing right now, and which change of activity is allowed."""

from __future__ import annotations

import enum

from .model import TaskKind


class ClientState(enum.IntEnum):
    # Numbers as in FEDn's own ClientState, so logs and dashboards read alike.
    IDLE = 1
    TRAINING = 2
    VALIDATING = 3
    PREDICTING = 4
    # The lower-case names of FEDn's client API (``ClientState.idle`` …), as aliases of the same members.
    idle = 1
    training = 2
    validating = 3
    predicting = 4


def client_state_to_string(state: object) -> str:
    """The upper-case name of a state, or ``UNKNOWN`` for anything that is not one."""
    if isinstance(state, ClientState):
        return state.name
    if isinstance(state, int) and not isinstance(state, bool):
        try:
            return ClientState(state).name
        except ValueError:
            return "UNKNOWN"
    return "UNKNOWN"


STATE_FOR_TASK: dict[TaskKind, ClientState] = {
    TaskKind.TRAIN: ClientState.TRAINING,
    TaskKind.VALIDATE: ClientState.VALIDATING,
    TaskKind.PREDICT: ClientState.PREDICTING,
    # Split-learning passes change the local model: FEDn counts them as training too.
    TaskKind.FORWARD: ClientState.TRAINING,
    TaskKind.BACKWARD: ClientState.TRAINING,
}

# One task at a time: busy states are entered only from IDLE and always return to it.
TRANSITIONS: dict[ClientState, frozenset[ClientState]] = {
    ClientState.IDLE: frozenset(STATE_FOR_TASK.values()),
    ClientState.TRAINING: frozenset({ClientState.IDLE}),
    ClientState.VALIDATING: frozenset({ClientState.IDLE}),
    ClientState.PREDICTING: frozenset({ClientState.IDLE}),
}


class IllegalTransition(Exception):
    def __init__(self, current: ClientState, wanted: ClientState) -> None:
        super().__init__(f"cannot go from {current.name} to {wanted.name}")
        self.current = current
        self.wanted = wanted


class StateMachine:
    """Holds the current state and refuses changes the transition table does not allow."""

    def __init__(self) -> None:
        self._state = ClientState.IDLE
        self.history: list[ClientState] = [ClientState.IDLE]

    @property
    def state(self) -> ClientState:
        return self._state

    def move_to(self, wanted: ClientState) -> None:
        if wanted not in TRANSITIONS[self._state]:
            raise IllegalTransition(self._state, wanted)
        self._state = wanted
        self.history.append(wanted)

    def begin(self, kind: TaskKind) -> None:
        """Enter the busy state for ``kind``; a task that will not be run (UNSUPPORTED) leaves it IDLE."""
        state = STATE_FOR_TASK.get(kind)
        if state is not None:
            self.move_to(state)

    def finish(self) -> None:
        if self._state is not ClientState.IDLE:
            self.move_to(ClientState.IDLE)
