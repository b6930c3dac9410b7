"""ClientState and its transition table, property-tested with a hypothesis state machine."""

from __future__ import annotations

import itertools

import pytest
from fedclient.domain.model import TaskKind
from fedclient.domain.state import (
    STATE_FOR_TASK,
    TRANSITIONS,
    ClientState,
    IllegalTransition,
    StateMachine,
    client_state_to_string,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

IDLE, TRAINING, VALIDATING, PREDICTING = list(ClientState)
# Written out here, not read from the implementation: the test states the rule.
EXPECTED = {
    IDLE: {TRAINING, VALIDATING, PREDICTING},
    TRAINING: {IDLE},
    VALIDATING: {IDLE},
    PREDICTING: {IDLE},
}


def test_transition_table_is_the_rule() -> None:
    assert {k: set(v) for k, v in TRANSITIONS.items()} == EXPECTED
    assert STATE_FOR_TASK == {
        TaskKind.TRAIN: TRAINING,
        TaskKind.VALIDATE: VALIDATING,
        TaskKind.PREDICT: PREDICTING,
        TaskKind.FORWARD: TRAINING,  # split-learning passes change the local model
        TaskKind.BACKWARD: TRAINING,
    }
    assert TaskKind.UNSUPPORTED not in STATE_FOR_TASK  # such a task is never run


def test_state_numbers_match_fedn() -> None:
    assert [(s.name, s.value) for s in ClientState] == [
        ("IDLE", 1),
        ("TRAINING", 2),
        ("VALIDATING", 3),
        ("PREDICTING", 4),
    ]


@pytest.mark.parametrize("state", list(ClientState))
def test_to_string_names_every_state(state: ClientState) -> None:
    assert client_state_to_string(state) == state.name
    assert client_state_to_string(int(state)) == state.name


@given(st.one_of(st.integers(), st.text(), st.none(), st.booleans(), st.floats()))
def test_to_string_of_anything_else_is_unknown(value: object) -> None:
    expected = (
        ClientState(value).name
        if isinstance(value, int) and not isinstance(value, bool) and value in {1, 2, 3, 4}
        else "UNKNOWN"
    )
    assert client_state_to_string(value) == expected


class ClientStateMachine(RuleBasedStateMachine):
    """Random sequences of begin/finish/move_to: the machine never leaves the table."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = StateMachine()
        self.model = ClientState.IDLE

    @rule(kind=st.sampled_from(list(TaskKind)))
    def begin(self, kind: TaskKind) -> None:
        if kind is TaskKind.UNSUPPORTED:
            self.machine.begin(kind)  # answered with an error without running: the state stays
        elif self.model is ClientState.IDLE:
            self.machine.begin(kind)
            self.model = STATE_FOR_TASK[kind]
        else:
            with pytest.raises(IllegalTransition):
                self.machine.begin(kind)

    @rule()
    def finish(self) -> None:
        self.machine.finish()
        self.model = ClientState.IDLE

    @rule(wanted=st.sampled_from(list(ClientState)))
    def move(self, wanted: ClientState) -> None:
        if wanted in EXPECTED[self.model]:
            self.machine.move_to(wanted)
            self.model = wanted
        else:
            with pytest.raises(IllegalTransition, match=f"{self.model.name} to {wanted.name}"):
                self.machine.move_to(wanted)

    @precondition(lambda self: self.model is not ClientState.IDLE)
    @rule()
    def busy_state_only_returns_to_idle(self) -> None:
        with pytest.raises(IllegalTransition):
            self.machine.begin(TaskKind.TRAIN)

    @invariant()
    def agrees_with_model(self) -> None:
        assert self.machine.state is self.model

    @invariant()
    def history_follows_the_table(self) -> None:
        history = self.machine.history
        assert history[0] is ClientState.IDLE
        for before, after in itertools.pairwise(history):
            assert after in EXPECTED[before]


TestClientStateMachine = ClientStateMachine.TestCase
