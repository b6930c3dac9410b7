"""The `fedclient run` flags, generated from the Settings model (one source of truth).

A new field in app.settings becomes a flag, an environment variable, a row of
`fedclient config show` and a line of docs/CONFIG.md with no other change.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import types
import typing
from typing import Any, Literal, NoReturn

from pydantic.fields import FieldInfo

from ..domain.errors import ConfigError
from .defaults import default_text
from .settings import Settings, env_names, extra, flags_of


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other user error.

    Abbreviations are off: with flags generated from the model, a prefix that is unique today
    could silently mean another setting tomorrow (FEDn's click CLI takes no prefixes either).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"fedclient: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """argparse's, but an unknown flag is named with the closest flag of the subcommand given."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            chosen = chosen_parser(self, parsed)
            chosen.error(unrecognized(extras, option_strings(chosen)))
        return parsed


def chosen_parser(parser: argparse.ArgumentParser, parsed: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command the arguments chose: ``fedclient config show`` -> the ``show`` parser."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(parsed, sub.dest, None) if sub is not None else None
        if sub is None or name not in sub.choices:
            return parser
        parser = sub.choices[name]


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings]


def unrecognized(extras: list[str], options: list[str]) -> str:
    """``unrecognized argument --tokn; did you mean --token?`` (difflib's closest flag, if any is close)."""
    flags = [e.split("=", 1)[0] for e in extras if e.startswith("-") and e != "-"]
    if not flags:  # a stray value: name it as given
        return f"unrecognized argument{'s' if len(extras) > 1 else ''} {' '.join(extras)}"
    guesses = [difflib.get_close_matches(flag, options, n=1, cutoff=0.7) for flag in flags]
    if len(flags) == 1:
        hint = f"; did you mean {guesses[0][0]}?" if guesses[0] else ""
        return f"unrecognized argument {flags[0]}{hint}"
    named = [f"{f} (did you mean {g[0]}?)" if g else f for f, g in zip(flags, guesses, strict=True)]
    return f"unrecognized arguments {', '.join(named)}"


def inner_type(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _add(group: argparse._ArgumentGroup, name: str, info: FieldInfo) -> None:
    meta = extra(info)
    kind = inner_type(info.annotation)
    help_text = info.description or ""
    default = default_text(name)
    if default is not None:  # argparse's %(default)s cannot say it: the flag's own default is SUPPRESS
        help_text += f" (default: {default})"
    env = " or ".join(env_names(name, info))
    kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": f"{help_text} [{env}]"}
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        if typing.get_origin(kind) is Literal:
            kwargs["choices"] = [str(c) for c in typing.get_args(kind)]
        for key in ("nargs", "const", "metavar", "action"):
            if key in meta:
                kwargs[key] = meta[key]
    # Values stay text: pydantic converts and checks them, with the same messages for every source.
    group.add_argument(*flags_of(name, info), **kwargs)


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, info in Settings.model_fields.items():
        title = str(extra(info).get("group", "settings"))
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        _add(groups[title], name, info)
    general = parser.add_argument_group("command line only")
    general.add_argument("-in", "--init", metavar="FILE", help="FEDn-style client.yaml with settings")
    loud = general.add_mutually_exclusive_group()
    loud.add_argument(
        "-q", "--quiet", action="store_true", help="warnings and errors only (log level WARNING)"
    )
    loud.add_argument("-v", "--verbose", action="store_true", help="debug output (log level DEBUG)")


def cli_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (absent flags are absent), shorthands applied."""
    values = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    if getattr(args, "quiet", False) or getattr(args, "verbose", False):
        if "log_level" in values:
            raise ConfigError("--quiet/--verbose and --log-level contradict each other: give one")
        values["log_level"] = "WARNING" if args.quiet else "DEBUG"
    return values
