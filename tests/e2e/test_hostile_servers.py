"""Bad server replies give clear errors, failed tasks and a client that lives on.

The controller first answers with an HTML proxy page (HTTP 200) and an HTML 502; the
combiner sends tasks whose data is not a JSON object, and model streams with the wrong
id, an oversized chunk, or more bytes than the model cap. Each such task is reported
failed to the combiner with a message saying what was wrong; a good task still succeeds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.e2e.hostile_world import HTML_PAGE, hostile_world


async def test_a_misbehaving_combiner_fails_tasks_clearly_and_the_client_lives_on(tmp_path: Path) -> None:
    async with hostile_world(tmp_path, extra={"max_model_bytes": "2MiB"}) as world:
        combiner = world.combiner
        for model, mode in (("wrong", "wrong-id"), ("fat-chunk", "oversized-chunk"), ("huge", "endless")):
            combiner.misbehave[model] = mode
        bad = {
            world.validate("seed", data="this is not json"): "request data is not JSON",
            world.validate("seed", data="[1, 2]"): "must be a JSON object, got list",
            world.validate("wrong"): "sent a chunk of model 'some-other-model'",
            world.validate("fat-chunk"): "larger than the limit of 4194304",
            world.validate("huge"): "larger than the limit of 2097152 bytes",
        }
        good = world.validate("seed")
        errors = await world.wait_statuses(list(bad), "ERROR")
        by_corr = {s.correlation_id: s.text for s in errors}
        for corr, fragment in bad.items():
            assert fragment in by_corr[corr], by_corr[corr]
        await combiner.wait_for_validations([good], timeout=60)
        assert [v.correlation_id for v in combiner.validations] == [good]
        assert combiner.downloads.count("huge") == 1  # a cap is final: not retried
        assert combiner.downloads.count("seed") == 1  # refused requests download nothing


async def test_html_pages_from_the_controller_are_retried_with_a_clear_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scripted = {
        "/api/v1/clients/add": [
            (200, HTML_PAGE, "text/html"),
            (502, b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        ],
        "/api/v1/packages/checksum": [(200, HTML_PAGE, "text/html")],
    }
    with caplog.at_level(logging.WARNING):
        async with hostile_world(tmp_path, scripted=scripted) as world:
            assert world.controller.scripted == {"/api/v1/clients/add": [], "/api/v1/packages/checksum": []}
    text = caplog.text
    assert "/api/v1/clients/add (HTTP 200) is an HTML page, not JSON" in text
    assert "Proxy login" in text  # the first bytes are shown
    assert "/api/v1/packages/checksum (HTTP 200) is an HTML page" in text
    assert "HTTP 502" in text
