"""How the domain's messages name a setting the user can change.

The domain names a setting by its field (``api_url``, ``package_extract_dir``) and the
form the message needs (a command-line flag, an environment variable); how a user
actually sets it is the app's to say (``app.setting_names`` installs that when the app
is loaded). Without it a setting is named by its field, which any other runtime
reusing the domain can live with.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class Form(enum.Enum):
    FLAG = "flag"  # as given on the command line
    ENV = "env"  # as given in the environment


_spelling: Callable[[str, Form], str] | None = None


def setting(name: str, form: Form = Form.FLAG) -> str:
    """How the user sets ``name``, in the given form."""
    return name if _spelling is None else _spelling(name, form)


def install_spelling(spell: Callable[[str, Form], str]) -> None:
    """Name settings the way the app's users set them (called once by the app)."""
    global _spelling
    _spelling = spell


def no_controller_message() -> str:
    """A client with neither a controller nor a combiner to attach to."""
    return (
        f"no controller configured: give {setting('api_url')}, "
        f"or {setting('combiner')} and {setting('combiner_port')}"
    )
