"""Softmax regression on 8x8 digits, stored the way FEDn's numpyhelper stores models.

The model is a list of arrays ``[W (64x10), b (10)]`` written with ``np.savez_compressed``
under the keys "0", "1", so FEDn's own aggregators can average it.
"""

from __future__ import annotations

import json
import os

import numpy as np

N_FEATURES = 64
N_CLASSES = 10


def init_parameters() -> list[np.ndarray]:
    """All zeros: softmax regression is convex, so it needs no random symmetry breaking,
    and every client and every run starts from the same seed model."""
    return [np.zeros((N_FEATURES, N_CLASSES)), np.zeros(N_CLASSES)]


def save_parameters(parameters: list[np.ndarray], path: str) -> None:
    # Write through a file object: given a name, numpy would append ".npz" to it.
    with open(path, "wb") as f:
        np.savez_compressed(f, **{str(i): p for i, p in enumerate(parameters)})


def load_parameters(path: str) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[str(i)] for i in range(len(data.files))]


def probabilities(parameters: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    weights, bias = parameters
    logits = x @ weights + bias
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def loss_and_accuracy(parameters: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = probabilities(parameters, x)
    loss = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
    return loss, float((p.argmax(axis=1) == y).mean())


def gradients(parameters: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Gradient of the mean cross-entropy with respect to W and b."""
    p = probabilities(parameters, x)
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    return [x.T @ p, p.sum(axis=0)]


def read_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}


def write_json(data: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
