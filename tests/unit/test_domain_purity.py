"""src/domain imports only the standard library (and itself)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "src" / "domain"


def imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_domain_imports_only_the_standard_library() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, "no domain modules found"
    offenders = {
        f"{path.relative_to(DOMAIN)}: {name}"
        for path in files
        for name in imported_top_levels(path)
        if name not in sys.stdlib_module_names and name not in {"domain", "__future__"}
    }
    assert not offenders, f"domain must stay pure: {sorted(offenders)}"
