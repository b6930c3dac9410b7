"""docs/CONFIG.md, generated from the Settings model (`make docs` writes it; a test checks it is fresh)."""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticUndefined

from .cli_flags import inner_type
from .defaults import APPLIED
from .settings import Settings, env_names, extra, flags_of

HEADER = """# Configuration reference

Generated from `src/app/settings.py` by `make docs`; do not edit by hand
(`tests/unit/test_config_docs.py` fails when this file is stale).

Every setting can be given three ways. The first one found wins:

1. a command-line flag of `fedclient run` (or `fedclient config show`);
2. an environment variable;
3. a key of the `--init` file (FEDn's client.yaml; `discover_host`/`discover_port` are read as
   `api_url`/`api_port`);

and otherwise the default applies. `fedclient config show [flags]` prints the effective value of
each setting and where it came from. Booleans take `--flag`/`--no-flag` on the command line and
`true`/`false` in the environment.

Command-line only: `-in/--init FILE` (the settings file), `-q/--quiet` (log level WARNING) and
`-v/--verbose` (log level DEBUG).
"""


def _default(name: str) -> str:
    if name in APPLIED:  # unset in the model, a real value in the client
        return APPLIED[name] if APPLIED[name] in ("true", "false") else f"`{APPLIED[name]}`"
    info = Settings.model_fields[name]
    if info.default_factory is not None:
        return "generated"
    value: Any = info.default
    if value is PydanticUndefined or value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`" if value != "" else '`""`'


def _type(name: str) -> str:
    kind = inner_type(Settings.model_fields[name].annotation)
    text = getattr(kind, "__name__", str(kind))
    if text == "Literal":
        text = " \\| ".join(str(a) for a in kind.__args__)
    return {"SecretStr": "secret", "Path": "path", "str": "text", "float": "number", "int": "integer"}.get(
        text, text
    )


def render_markdown() -> str:
    groups: dict[str, list[str]] = {}
    for name, info in Settings.model_fields.items():
        meta = extra(info)
        spellings = flags_of(name, info)
        if inner_type(info.annotation) is bool:
            spellings += [f"--no-{f[2:]}" for f in spellings if f.startswith("--")]
        flags = ", ".join(f"`{f}`" for f in spellings)
        env = ", ".join(f"`{e}`" for e in env_names(name, info))
        notes = info.description or ""
        if meta.get("secret"):
            notes += " (masked by `config show`)"
        row = f"| `{name}` | {flags} | {env} | {_type(name)} | {_default(name)} | {notes} |"
        groups.setdefault(str(meta.get("group", "settings")), []).append(row)
    parts = [HEADER]
    for title, table in groups.items():
        parts.append(f"## {title[0].upper()}{title[1:]}\n")
        parts.append("| setting (file key) | flags | environment | type | default | what it does |")
        parts.append("|---|---|---|---|---|---|")
        parts.extend(table)
        parts.append("")
    return "\n".join(parts)
