"""``python train.py <in_model> <out_model>``: mini-batch gradient descent on this client's shard.

Client settings from the round config arrive in ``<in_model>-metadata`` (FEDn's
convention); ``learning_rate``, ``epochs`` and ``batch_size`` there override the
defaults. Round-config values may be strings, hence the conversions.
"""

from __future__ import annotations

import sys

import numpy as np
from data import client_shard, load_split
from model import gradients, load_parameters, read_json, save_parameters, write_json

LEARNING_RATE = 0.1
EPOCHS = 1
BATCH_SIZE = 64


def train(in_model: str, out_model: str) -> None:
    settings = read_json(in_model + "-metadata")
    lr = float(settings.get("learning_rate", LEARNING_RATE))
    epochs = int(settings.get("epochs", EPOCHS))
    batch_size = int(settings.get("batch_size", BATCH_SIZE))
    x, y, _, _ = load_split()
    parameters = load_parameters(in_model)
    rng = np.random.default_rng(client_shard()[0])
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            batch = order[start : start + batch_size]
            grads = gradients(parameters, x[batch], y[batch])
            parameters = [p - lr * g for p, g in zip(parameters, grads, strict=True)]
    save_parameters(parameters, out_model)
    metadata = {"num_examples": len(y), "batch_size": batch_size, "epochs": epochs, "lr": lr}
    write_json(metadata, out_model + "-metadata")
    print(f"trained on {len(y)} examples: {metadata}")


if __name__ == "__main__":
    train(sys.argv[1], sys.argv[2])
