"""src/domain imports only the standard library and itself (relative imports that stay inside it)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "src" / "domain"


def offending_imports(path: Path, root: Path = DOMAIN) -> set[str]:
    """Imports in ``path`` that are neither the standard library nor inside ``root`` (the domain)."""
    depth = len(path.relative_to(root).parent.parts)  # packages between this module and the root
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] not in sys.stdlib_module_names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] not in sys.stdlib_module_names | {"__future__"}:
                    names.add(node.module)
            elif node.level - 1 > depth:  # climbs out of fedclient.domain into adapters or app
                names.add("." * node.level + (node.module or ""))
    return names


def test_domain_imports_only_the_standard_library() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, "no domain modules found"
    offenders = {f"{p.relative_to(DOMAIN)}: {name}" for p in files for name in offending_imports(p)}
    assert not offenders, f"domain must stay pure: {sorted(offenders)}"


def test_the_purity_check_sees_an_escape(tmp_path: Path) -> None:
    root = tmp_path / "domain"
    (root / "sub").mkdir(parents=True)
    probe = root / "_purity_probe.py"
    probe.write_text("from ..adapters import memory\nimport numpy\nfrom . import model\n")
    assert offending_imports(probe, root) == {"..adapters", "numpy"}
    nested = root / "sub" / "_purity_probe.py"  # one package down, `..` is still the domain
    nested.write_text("from .. import model\nfrom ...app import settings\n")
    assert offending_imports(nested, root) == {"...app"}
