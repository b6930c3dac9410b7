"""A model that costs nothing to train: one float32 array, nudged a little each round.

Its size is the point: ``TINY_MODEL_KIB`` (default 4) sets it, so benchmarks can
measure the client's own overhead (``bench/rounds.py``, 1 MiB) or many clients
in one process (``bench/scale.py``) without the training code in the way.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np


def size_kib() -> int:
    return int(os.environ.get("TINY_MODEL_KIB", "4"))


def seed() -> bytes:
    return to_bytes(np.zeros(size_kib() * 256, dtype=np.float32))


def to_bytes(weights: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **{"0": weights})
    return out.getvalue()


def load(path: str | Path) -> np.ndarray:
    with np.load(path) as npz:
        return np.asarray(npz["0"])


def step(weights: np.ndarray) -> np.ndarray:
    return weights + np.float32(0.01)


def metadata() -> dict[str, int]:
    return {"num_examples": 10}


def metrics(weights: np.ndarray) -> dict[str, float]:
    return {"mean_weight": float(weights.mean())}


def write_json(data: dict, path: str) -> None:
    Path(path).write_text(json.dumps(data))
