"""The digits data set bundled with scikit-learn (no download), split for a small federation.

A fixed shuffle makes every client agree on the split: the last 20 % is a test set
shared by all; the rest is cut into ``FEDN_NUM_CLIENTS`` shards and this client
trains on shard ``FEDN_CLIENT_INDEX`` (0-based).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

SEED = 42
TEST_FRACTION = 0.2


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled file read directly: importing sklearn.datasets alone takes about a
    second, most of a training run. Same data as ``load_digits()``, used as the fallback."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "datasets", "data", "digits.csv.gz")
        if os.path.exists(path):
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1]
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data, digits.target


def _shuffled() -> tuple[np.ndarray, np.ndarray]:
    pixels, target = _digits()
    x = pixels.astype(np.float64) / 16.0  # pixel intensities are 0..16
    y = target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(y))
    return x[order], y[order]


def client_shard() -> tuple[int, int]:
    index = int(os.environ.get("FEDN_CLIENT_INDEX", "0"))
    count = int(os.environ.get("FEDN_NUM_CLIENTS", "1"))
    if count < 1 or not 0 <= index < count:
        raise SystemExit(f"FEDN_CLIENT_INDEX={index} must be in [0, FEDN_NUM_CLIENTS={count})")
    return index, count


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train) for this client's shard and the shared (x_test, y_test)."""
    x, y = _shuffled()
    n_test = int(len(y) * TEST_FRACTION)
    x_test, y_test = x[-n_test:], y[-n_test:]
    index, count = client_shard()
    shard = np.array_split(np.arange(len(y) - n_test), count)[index]
    return x[shard], y[shard], x_test, y_test
