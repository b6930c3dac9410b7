"""Write the seed model: ``python build.py [out_path]`` (default ``seed.npz``)."""

from __future__ import annotations

import sys

from model import init_parameters, save_parameters

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "seed.npz"
    save_parameters(init_parameters(), out)
    print(f"seed model written to {out}")
