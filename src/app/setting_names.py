"""The domain's messages name settings the way this app's users set them: flags and FEDN_* variables."""

from __future__ import annotations

from ..domain.wording import Form, install_spelling
from .settings import Settings, env_names, long_flag


def spell(name: str, form: Form) -> str:
    """``--api-url`` / ``FEDN_API_URL`` for ``api_url``; a name that is no setting stays as it is."""
    if name not in Settings.model_fields:
        return name
    return long_flag(name) if form is Form.FLAG else env_names(name)[0]


def install() -> None:
    install_spelling(spell)
