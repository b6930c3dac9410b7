"""``python validate.py <in_model> <out_json>``: FEDn's script form of the tiny model's validation."""

import sys

import tiny

if __name__ == "__main__":
    tiny.write_json(tiny.metrics(tiny.load(sys.argv[1])), sys.argv[2])
