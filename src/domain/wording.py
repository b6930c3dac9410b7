"""How the domain's messages name a setting the user can change.

The domain names a setting by its field (``api_url``, ``package_extract_dir``) and the
form the message needs (a command-line flag, an environment variable). How a user
actually sets it is the app's to say: it hands a ``SettingNames`` to the parts whose
messages name settings (the plan's ``setting_names``, the credentials' ``names``, the
interpreter choice's ``names``). Without one a setting is named by its field
(``field_names``), which any other runtime reusing the domain can live with.
"""

from __future__ import annotations

import enum
from collections.abc import Callable


class Form(enum.Enum):
    FLAG = "flag"  # as given on the command line
    ENV = "env"  # as given in the environment


# How the user sets the setting ``name``, in the given form.
SettingNames = Callable[[str, Form], str]


def field_names(name: str, form: Form = Form.FLAG, /) -> str:
    """A setting named by its field (no app to say how users set it)."""
    return name


def no_controller_message(names: SettingNames = field_names) -> str:
    """A client with neither a controller nor a combiner to attach to."""
    return (
        f"no controller configured: give {names('api_url', Form.FLAG)}, "
        f"or {names('combiner', Form.FLAG)} and {names('combiner_port', Form.FLAG)}"
    )
