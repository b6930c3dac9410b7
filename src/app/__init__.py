"""The application: settings, the CLI and the composition root (``container``).

Loading it makes the domain's messages name settings as this app's users set them.
"""

from .setting_names import install as _install_setting_names

_install_setting_names()
