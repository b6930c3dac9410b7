"""Optional dependencies: a missing one is a one-line message naming the extra to install."""

from __future__ import annotations

import importlib.util

from ..domain.errors import ConfigError

# The modules each extra of pyproject.toml brings.
EXTRAS = {"sandbox": ("numpy", "matplotlib"), "privacy": ("numpy", "dp_accounting"), "ray": ("ray",)}


class MissingExtra(ConfigError):
    pass


def missing_extra_message(extra: str, module: str, what: str = "this") -> str:
    return f"{what} needs the '{extra}' extra ({module} is not installed): pip install 'fedclient[{extra}]'"


def require_extra(extra: str, *modules: str, what: str = "this") -> None:
    """MissingExtra unless every module of ``extra`` (or ``modules``) can be imported; ``what`` needs it."""
    for module in modules or EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtra(missing_extra_message(extra, module, what))


def extra_for_missing(exc: ModuleNotFoundError) -> MissingExtra | None:
    """The MissingExtra for an import that failed because an extra is not installed, else None."""
    top = (exc.name or "").split(".")[0]
    for extra, modules in EXTRAS.items():
        if top in modules:
            return MissingExtra(missing_extra_message(extra, top))
    return None
