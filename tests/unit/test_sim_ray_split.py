"""`simulate --ray` splits N clients into actor groups that differ by at most one client."""

from __future__ import annotations

from fedclient.app.simulation.ray_driver import split
from hypothesis import given
from hypothesis import strategies as st


@given(st.integers(1, 100_000), st.integers(1, 500))
def test_every_client_is_in_exactly_one_group_and_groups_differ_by_at_most_one(
    clients: int, groups: int
) -> None:
    counts = split(clients, groups)
    assert len(counts) == groups and sum(counts) == clients
    assert max(counts) - min(counts) <= 1
