"""A value pydantic refuses, said in the client's words: what was given and what is accepted.

``'maybe' is not a boolean; use true/false, 1/0, yes/no, on/off`` instead of pydantic's
"Input should be a valid boolean, unable to interpret input". The caller says where the
value came from (``--flag``, ``FEDN_X``, a file key); a secret's value is never repeated.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import annotated_types
from pydantic_core import ErrorDetails

from ..domain.policy import SIZE_FORMS
from .cli_flags import inner_type
from .settings import Settings, env_names, extra, is_secret

BOOLEANS = "true/false, 1/0, yes/no, on/off"


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _bounds(name: str) -> str:
    """``from 1 to 65535``, ``greater than 0``, ``of 0 or more`` (empty when unbounded)."""
    low = high = ""
    for rule in Settings.model_fields[name].metadata:
        if isinstance(rule, annotated_types.Ge):
            low = f"{rule.ge}"
        elif isinstance(rule, annotated_types.Gt):
            low = f">{rule.gt}"
        elif isinstance(rule, annotated_types.Le):
            high = f"{rule.le}"
    if low and high and not low.startswith(">"):
        return f" from {low} to {high}"
    if low.startswith(">"):
        return f" greater than {low[1:]}"
    return f" of {low} or more" if low else ""


def accepted(name: str) -> str | None:
    """What setting ``name`` accepts, in words; None for free text."""
    kind = inner_type(Settings.model_fields[name].annotation)
    if kind is bool:
        return BOOLEANS
    if typing.get_origin(kind) is Literal:
        return _either([str(c) for c in typing.get_args(kind)])
    if kind is int:
        return f"a whole number{_bounds(name)}"
    if kind is float:
        return f"a number{_bounds(name)}"
    if extra(Settings.model_fields[name]).get("metavar") == "SIZE":
        return SIZE_FORMS
    return None


# pydantic's error types -> what the refused value is not.
_NOT_A = {
    "bool_parsing": "a boolean",
    "bool_type": "a boolean",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "literal_error": "one of the choices",
    "size_parsing": "a size",
}
_OUT_OF_RANGE = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def problem(name: str, error: ErrorDetails) -> str:
    """One refused value of setting ``name``, without saying where it came from."""
    secret = is_secret(name)
    given: Any = error.get("input")
    shown = "the value" if secret else repr(str(given)[:60]) if isinstance(given, str) else repr(given)
    words = accepted(name)
    kind = error["type"]
    if words is not None and kind in _NOT_A:
        return f"{shown} is not {_NOT_A[kind]}; use {words}"
    if words is not None and kind in _OUT_OF_RANGE:
        return f"{shown} is out of range; use {words}"
    if kind == "size_too_small":
        return f"{shown} is too small; use a size of more than 0 bytes (e.g. 512MiB)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message if secret else f"{message} (got {shown})"


def field_of(error: ErrorDetails) -> str:
    """The Settings field an error is about (an alias such as FEDN_TOKEN names its field indirectly)."""
    loc = error["loc"]
    field = str(loc[0]) if loc else ""
    if field not in Settings.model_fields:
        field = next((n for n in Settings.model_fields if field in env_names(n)), field)
    return field
