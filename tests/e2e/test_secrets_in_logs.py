"""A whole session at DEBUG, with failures that log tracebacks: the token and the refresh token
appear nowhere — not in a log line, a traceback, a child's output, or a status the combiner got.
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fedclient.app.logs import configure_logging
from fedclient.app.settings import Settings
from fedclient.domain.ports import TrainerFactory
from fedclient.domain.redaction import forget_secret

from tests.e2e.hostile_world import hostile_world

TOKEN = "tok-" + secrets.token_hex(16)
REFRESH = "rfr-" + secrets.token_hex(16)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything the client's logging writes, via the production logging set-up."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        forget_secret(TOKEN)
        forget_secret(REFRESH)


class Injected(RuntimeError):
    pass


def failing_on_boom(inner: TrainerFactory) -> TrainerFactory:
    """A trainer that raises a non-domain error (a bug: logged with its traceback) for model 'boom'."""

    def build(package_dir: Path, manifest: Any) -> Any:
        real = inner(package_dir, manifest)

        class Trainer:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]:
                if in_model.read_bytes().startswith(b"boom"):
                    raise Injected(f"injected failure holding {TOKEN} and refresh_token={REFRESH}")
                return await real.validate(in_model, out_json)

        return Trainer()

    return build


async def test_no_secret_in_a_debug_session(tmp_path: Path, captured: io.StringIO) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "refresh").write_text(REFRESH + "\n")
    # The controller first fails with a page that echoes the token back (a broken proxy would).
    echo = (500, f"<html>upstream said: Authorization: Bearer {TOKEN}</html>".encode(), "text/html")

    def configure(settings: Settings) -> None:
        configure_logging("DEBUG", settings.secrets)  # what `fedclient run` does
        [handler] = logging.getLogger().handlers
        # fedclient's handler writes to whatever sys.stderr is (rich's live display swaps it)
        assert (
            isinstance(handler, logging.StreamHandler) and type(handler.stream).__name__ == "_CurrentStderr"
        )
        handler.setStream(captured)  # type: ignore[arg-type]

    async with hostile_world(
        tmp_path,
        token=TOKEN,
        extra={"token": None, "token_file": tmp_path / "token", "refresh_token_file": tmp_path / "refresh"},
        secrets_text=f"token={TOKEN} refresh={REFRESH}",
        scripted={"/api/v1/clients/add": [echo]},
        on_settings=configure,
        wrap_trainers=failing_on_boom,
    ) as world:
        for name, content in (("boom", b"boom"), ("echo", b"echo")):
            model = tmp_path / name
            model.write_bytes(content)
            world.combiner.put_model(name, model)
        failed = [world.validate("boom"), world.validate("echo")]
        good = world.validate("seed")
        await world.wait_statuses(failed, "ERROR")
        await world.combiner.wait_for_validations([good], timeout=60)
        statuses = [f"{s.text} {s.data}" for s in world.combiner.statuses]

    logs = captured.getvalue()
    assert "Traceback (most recent call last)" in logs and "Injected: injected failure holding ***" in logs
    assert "upstream said: Authorization: Bearer ***" in logs  # the echoed token, scrubbed
    assert "leaking" in logs  # the child's output line was logged ...
    assert "validate.py" in logs and " DEBUG " in logs  # ... and this really was a DEBUG session
    for secret in (TOKEN, REFRESH):
        assert secret not in logs
        assert not any(secret in status for status in statuses)
    assert any("***" in status for status in statuses)  # the failure reached the combiner, scrubbed
