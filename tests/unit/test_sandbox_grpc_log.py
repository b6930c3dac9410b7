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


def _printed(error: BaseException, capsys: pytest.CaptureFixture[str]) -> str:
    import grpc._cython.cygrpc as cygrpc

    try:
        raise error
    except BaseException:
        cygrpc.traceback.print_exc()  # what gRPC's _schedule_rpc_coro does after its log line
    return capsys.readouterr().err


async def test_grpc_prints_no_traceback_for_a_cancelled_call_and_still_one_for_a_real_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    combiner = SandboxCombiner(tmp_path)
    await combiner.start()  # gives gRPC's server code the quiet traceback module
    await combiner.crash()
    assert _printed(asyncio.CancelledError(), capsys) == ""
    printed = _printed(ValueError("a real bug"), capsys)
    assert printed.startswith("Traceback (most recent call last):") and "ValueError: a real bug" in printed
