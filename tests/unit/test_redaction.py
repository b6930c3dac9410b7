"""The one redactor: registered secrets and credential-shaped text, in messages, tracebacks and stacks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedclient.app.logs import install_log_redaction
from fedclient.app.settings import read_secret_file
from fedclient.app.settings_load import load_settings
from fedclient.domain.errors import ConfigError
from fedclient.domain.redaction import forget_secret, mask, redact, register_secret

SECRET = "s3cr3t-redaction-test-value"


@pytest.fixture
def secret() -> Iterator[str]:
    register_secret(SECRET)
    install_log_redaction()
    yield SECRET
    forget_secret(SECRET)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer ***"),
        ("('authorization', 'Token abcdef')", "('authorization', 'Token ***')"),
        ("GET /x?token=abcdef123&y=1", "GET /x?token=***&y=1"),
        ('{"refresh_token": "r-1234567"}', '{"refresh_token": "***"}'),
        ("FEDN_AUTH_TOKEN=abcdefgh", "FEDN_AUTH_TOKEN=***"),
        ("the combiner refused the token: bad signature", "the combiner refused the token: bad signature"),
    ],
)
def test_credential_shaped_text_is_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_every_part_of_a_log_record_is_scrubbed(secret: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("fedclient.test.redaction")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        log.info("args %s and %r", secret, {"t": secret})
        try:
            raise RuntimeError(f"failed with {secret}") from ValueError(secret)
        except RuntimeError:
            log.exception("boom")
        log.warning("stack", stack_info=True, extra={"note": "x"})
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert secret not in text
    assert "args *** and {'t': '***'}" in text and "RuntimeError: failed with ***" in text
    assert "ValueError: ***" in text and "Stack (most recent call last)" in text


def test_mask_never_shows_the_value() -> None:
    assert mask("abc") == "*** (set)" and mask(None) == "(not set)" and mask("") == "(not set)"


def test_token_files(tmp_path: Path) -> None:
    good = tmp_path / "token"
    good.write_text("  tok-from-file-123 \n\n")
    assert read_secret_file(good, "token") == "tok-from-file-123"
    settings = load_settings({"token_file": good, "refresh_token_file": good})
    assert settings.token_value == "tok-from-file-123" and settings.refresh_token_value == "tok-from-file-123"
    (tmp_path / "empty").write_text("\n")
    for path, message in ((tmp_path / "empty", "is empty"), (tmp_path / "missing", "cannot read")):
        with pytest.raises(ConfigError, match=message):
            read_secret_file(path, "token")


def test_token_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t").write_text("env-file-token-1\n")
    monkeypatch.setenv("FEDN_AUTH_TOKEN_FILE", str(tmp_path / "t"))
    monkeypatch.delenv("FEDN_AUTH_TOKEN", raising=False)
    assert load_settings({}).token_value == "env-file-token-1"
