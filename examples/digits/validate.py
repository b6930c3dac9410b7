"""``python validate.py <in_model> <out_json>``: loss and accuracy on the shard and the shared test set."""

from __future__ import annotations

import sys

from data import load_split
from model import load_parameters, loss_and_accuracy, write_json


def validate(in_model: str, out_json: str) -> None:
    x_train, y_train, x_test, y_test = load_split()
    parameters = load_parameters(in_model)
    training_loss, training_accuracy = loss_and_accuracy(parameters, x_train, y_train)
    test_loss, test_accuracy = loss_and_accuracy(parameters, x_test, y_test)
    metrics = {
        "training_loss": training_loss,
        "training_accuracy": training_accuracy,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    }
    write_json(metrics, out_json)
    print(metrics)


if __name__ == "__main__":
    validate(sys.argv[1], sys.argv[2])
