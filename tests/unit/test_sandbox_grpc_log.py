"""The sandbox combiner's stop: handlers it cancels are not reported as unhandled errors, others still are."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.combiner import SandboxCombiner

UNHANDLED = "Exception not handled by _handle_exceptions in servicer method"


async def test_a_handler_cancelled_by_the_stop_is_quiet_and_a_real_error_still_reported(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    combiner = SandboxCombiner(tmp_path)
    await combiner.start()  # installs the filter on gRPC's server logger
    await combiner.crash()
    grpc_log = logging.getLogger("grpc._cython.cygrpc")
    with caplog.at_level(logging.ERROR):
        for error in (asyncio.CancelledError(), ValueError("a real bug")):
            try:
                raise error
            except BaseException:
                grpc_log.error(UNHANDLED, exc_info=True)
    reported = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [type(e) for e in reported] == [ValueError]
