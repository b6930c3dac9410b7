"""``python build.py [out_path]``: the seed model (zeros)."""

import sys
from pathlib import Path

import tiny

if __name__ == "__main__":
    Path(sys.argv[1] if len(sys.argv) > 1 else "seed.npz").write_bytes(tiny.seed())
