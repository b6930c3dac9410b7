"""A YAML error as one line an editor can jump to: ``client.yaml:3:7: mapping values are not allowed here``.

PyYAML's own text spans several lines (the snippet, a caret under it); squashed into one
line it reads as noise. Its ``problem_mark`` has the place (0-based), its ``problem`` the words.
"""

from __future__ import annotations

import yaml


def yaml_problem(name: str, exc: yaml.YAMLError, text: str | None = None) -> str:
    """``NAME:LINE:COLUMN: PROBLEM`` (1-based), or ``NAME: PROBLEM`` when PyYAML gives no place.

    ``text``, when given, places a ReaderError (a character YAML may not hold), which
    PyYAML only gives as an offset.
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"{name}:{mark.line + 1}:{mark.column + 1}: {problem}"
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character
        code = char[0] if isinstance(char, bytes) else char if isinstance(char, int) else ord(char)
        what = f"unacceptable character #x{code:04x}: {exc.reason}"
        if text is not None and isinstance(exc.position, int) and exc.position <= len(text):
            before = text[: exc.position]
            line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
            return f"{name}:{line}:{column}: {what}"
        return f"{name}: {what}"
    return f"{name}: {problem or ' '.join(str(exc).split())}"
