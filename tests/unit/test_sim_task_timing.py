"""simulate counts each client that connected once: a reconnect is not one more client."""

from __future__ import annotations

from fedclient.app.simulation.task_timing import TaskClock, TaskTimes, TimedConnector
from fedclient.domain.model import CombinerAddress, Identity
from fedclient.testing.fakes import InMemoryCombiner, InMemoryConnector


async def test_a_reconnect_is_not_counted_as_another_client() -> None:
    times = TaskTimes()
    combiner = InMemoryCombiner()
    connector = TimedConnector(InMemoryConnector(combiner), TaskClock(times), times)
    address = CombinerAddress("127.0.0.1", 12080)
    first, second = Identity("sim-0", "sim-0"), Identity("sim-1", "sim-1")

    await connector.connect(address, first)
    await connector.connect(address, first)  # the same client again, after its stream dropped
    await connector.connect(address, second)

    assert len(combiner.connects) == 3  # every attempt reached the combiner
    assert times.connected == 2
    assert times.combiners == {address.target}
