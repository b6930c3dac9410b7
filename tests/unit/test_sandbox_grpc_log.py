"""The sandbox combiner's stop: handlers it cancels are not reported as unhandled errors, others still are."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fedclient.adapters.sandbox.combiner import SandboxCombiner

UNHANDLED = "Exception not handled by _handle_exceptions in servicer method"


async def test_a_handler_cancelled_by_the_stop_is_quiet_and_a_real_error_still_reported(
    tmp_path: Path,
) -> None:
    combiner = SandboxCombiner(tmp_path)
    await combiner.start()  # installs the filter on gRPC's server logger
    await combiner.crash()
    grpc_log = logging.getLogger("grpc._cython.cygrpc")
    kept: list[logging.LogRecord] = []
    keep = logging.Handler(logging.ERROR)
    keep.emit = kept.append  # type: ignore[method-assign]
    # Other tests configure logging (levels, disabled loggers): look at this logger alone.
    saved = grpc_log.level, grpc_log.disabled
    grpc_log.addHandler(keep)
    grpc_log.setLevel(logging.ERROR)
    grpc_log.disabled = False
    try:
        for error in (asyncio.CancelledError(), ValueError("a real bug")):
            try:
                raise error
            except BaseException:
                grpc_log.error(UNHANDLED, exc_info=True)
    finally:
        grpc_log.removeHandler(keep)
        grpc_log.setLevel(saved[0])
        grpc_log.disabled = saved[1]
    assert [type(r.exc_info[1]) for r in kept if r.exc_info] == [ValueError]
