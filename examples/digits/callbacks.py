"""The digits client in-process: the same training as train.py / validate.py / predict.py, as callbacks.

    cd examples/digits && fedclient run --api-url localhost --api-port 8092 --entrypoint callbacks

fedclient imports this module once and calls these functions for every task, with the
models as lists of numpy arrays (``models = "numpy"``). ``log_metric`` reports the loss
of every epoch to the server, tagged with the round's session, round and model ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from data import client_shard, load_split
from fedclient import log_attributes, log_metric
from model import gradients, loss_and_accuracy, probabilities

models = "numpy"

LEARNING_RATE = 0.1
BATCH_SIZE = 64
X_TRAIN, Y_TRAIN, X_TEST, Y_TEST = load_split()  # loaded once, kept for every round


def train(parameters: list[np.ndarray], settings: dict[str, Any]) -> tuple[list[np.ndarray], dict[str, Any]]:
    lr = float(settings.get("learning_rate", LEARNING_RATE))
    epochs = int(settings.get("epochs", 1))
    rng = np.random.default_rng(client_shard()[0])
    for _ in range(epochs):
        order = rng.permutation(len(Y_TRAIN))
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            grads = gradients(parameters, X_TRAIN[batch], Y_TRAIN[batch])
            parameters = [p - lr * g for p, g in zip(parameters, grads, strict=True)]
        loss, accuracy = loss_and_accuracy(parameters, X_TRAIN, Y_TRAIN)
        log_metric({"train_loss": loss, "train_accuracy": accuracy})
    log_attributes({"framework": "numpy", "shard_examples": len(Y_TRAIN)})
    return parameters, {"num_examples": len(Y_TRAIN), "epochs": epochs, "lr": lr}


def validate(parameters: list[np.ndarray]) -> dict[str, float]:
    training_loss, training_accuracy = loss_and_accuracy(parameters, X_TRAIN, Y_TRAIN)
    test_loss, test_accuracy = loss_and_accuracy(parameters, X_TEST, Y_TEST)
    return {
        "training_loss": training_loss,
        "training_accuracy": training_accuracy,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    }


def predict(parameters: list[np.ndarray]) -> dict[str, Any]:
    predicted = probabilities(parameters, X_TEST).argmax(axis=1)
    return {"predictions": predicted[:20].tolist(), "num_predictions": len(predicted)}
