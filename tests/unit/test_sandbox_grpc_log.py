"""The sandbox combiner's stop: handlers it cancels are not reported as unhandled errors, others still are."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest
from fedclient.adapters.sandbox.combiner import SandboxCombiner
from fedclient.domain.redaction import scrub_record

UNHANDLED = "Exception not handled by _handle_exceptions in servicer method"


def _record(error: BaseException, scrubbed: bool) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        record = logging.LogRecord(
            "grpc._cython.cygrpc", logging.ERROR, __file__, 1, UNHANDLED, None, sys.exc_info()
        )
    # with the app's redaction installed, the traceback is rendered into exc_text at once
    return scrub_record(record) if scrubbed else record


@pytest.mark.parametrize("scrubbed", [False, True], ids=["raw record", "redacted record"])
async def test_a_handler_cancelled_by_the_stop_is_quiet_and_a_real_error_still_reported(
    tmp_path: Path, scrubbed: bool
) -> None:
    combiner = SandboxCombiner(tmp_path)
    await combiner.start()  # installs the filter on gRPC's server logger
    await combiner.crash()
    grpc_log = logging.getLogger("grpc._cython.cygrpc")
    assert not grpc_log.filter(_record(asyncio.CancelledError(), scrubbed))
    assert grpc_log.filter(_record(ValueError("a real bug"), scrubbed))
