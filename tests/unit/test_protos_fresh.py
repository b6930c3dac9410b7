"""The checked-in generated gRPC code must be exactly what protos/fedn.proto generates today."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "src" / "adapters" / "combiner_grpc" / "generated"


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generate = runpy.run_path(str(ROOT / "scripts" / "gen_protos.py"))["generate"]
    generate(tmp_path)
    fresh, current = _files(tmp_path), _files(CHECKED_IN)
    assert sorted(fresh) == sorted(current), "generated files differ from the checked-in set: run make protos"
    stale = [name for name in fresh if fresh[name] != current[name]]
    assert not stale, f"generated code is stale ({', '.join(stale)}): run make protos"
