"""The domain's messages name settings the way this app's users set them: flags and FEDN_* variables.

``spell`` is the app's ``domain.wording.SettingNames``: ``build_plan`` puts it in the plan, the
container gives it to the credentials and the trainer factory.
"""

from __future__ import annotations

from ..domain.wording import Form
from .settings import Settings, env_names, long_flag


def spell(name: str, form: Form = Form.FLAG, /) -> str:
    """``--api-url`` / ``FEDN_API_URL`` for ``api_url``; a name that is no setting stays as it is."""
    if name not in Settings.model_fields:
        return name
    return long_flag(name) if form is Form.FLAG else env_names(name)[0]
