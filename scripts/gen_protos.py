"""Generate the Python gRPC modules from protos/fedn.proto.

Usage: python scripts/gen_protos.py [OUT_DIR]

OUT_DIR defaults to src/adapters/combiner_grpc/generated. The generated modules
import each other by bare name; we rewrite that to a relative import so they
live inside our package. tests/unit/test_protos_fresh.py regenerates into a
temporary dir and fails when the checked-in copy differs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
DEFAULT_OUT = ROOT / "src" / "adapters" / "combiner_grpc" / "generated"


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    bin_dir = Path(sys.executable).parent  # the venv's own mypy-protobuf plugins
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        str(PROTO_DIR / "fedn.proto"),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in out_dir.glob("fedn_pb2*.py*"):
        text = path.read_text()
        fixed = re.sub(r"^import fedn_pb2 as", "from . import fedn_pb2 as", text, flags=re.M)
        if fixed != text:
            path.write_text(fixed)
    init = out_dir / "__init__.py"
    init.write_text('"""Code generated from protos/fedn.proto by `make protos`. Do not edit."""\n')


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
