"""Simulated clients' heartbeats are paced to the group's size, and stay inside a combiner's online window."""

from __future__ import annotations

from fedclient.app.simulation.group import DEFAULT_HEARTBEAT_INTERVAL, HEARTBEAT_RATE, heartbeat_interval
from hypothesis import given
from hypothesis import strategies as st


def test_few_clients_beat_as_real_ones_and_many_slower() -> None:
    assert heartbeat_interval(10) == DEFAULT_HEARTBEAT_INTERVAL
    assert heartbeat_interval(5000) == 5000 / HEARTBEAT_RATE  # 20 s: 250 heartbeats a second in all
    assert heartbeat_interval(5000, online_window=10.0) == 10.0 / 3  # FEDn's window: never offline


@given(st.integers(1, 100_000), st.one_of(st.none(), st.floats(1.0, 600.0)))
def test_never_faster_than_a_real_client_and_a_third_of_the_window_at_most(
    clients: int, window: float | None
) -> None:
    beat = heartbeat_interval(clients, window)
    assert beat >= DEFAULT_HEARTBEAT_INTERVAL
    if window is not None:
        assert beat <= max(DEFAULT_HEARTBEAT_INTERVAL, window / 3)
    else:  # the group's heartbeats stay within the rate one event loop keeps up with
        assert beat == DEFAULT_HEARTBEAT_INTERVAL or clients / beat <= HEARTBEAT_RATE * (1 + 1e-9)


def test_the_sandbox_widens_its_online_window_to_the_pace_and_fedn_gets_the_pace_of_its_window() -> None:
    from fedclient.app.simulation.simulate import pacing

    beat, sandbox = pacing(5000, None)
    assert beat == 20.0 and sandbox["online_window"] == 60.0 and sandbox["history"] > 0
    beat, _ = pacing(5000, "http://controller:8092")
    assert beat == 10.0 / 3
