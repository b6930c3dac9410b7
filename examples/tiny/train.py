"""``python train.py <in_model> <out_model>``: FEDn's script form of the tiny model's training."""

import sys
from pathlib import Path

import tiny

if __name__ == "__main__":
    in_model, out_model = sys.argv[1], sys.argv[2]
    Path(out_model).write_bytes(tiny.to_bytes(tiny.step(tiny.load(in_model))))
    tiny.write_json(tiny.metadata(), out_model + "-metadata")
