"""``python predict.py <in_model> <out_json>``: class predictions for the shared test set."""

from __future__ import annotations

import sys

from data import load_split
from model import load_parameters, probabilities, write_json


def predict(in_model: str, out_json: str) -> None:
    _, _, x_test, _ = load_split()
    predicted = probabilities(load_parameters(in_model), x_test).argmax(axis=1)
    write_json({"predictions": predicted[:20].tolist(), "num_predictions": len(predicted)}, out_json)


if __name__ == "__main__":
    predict(sys.argv[1], sys.argv[2])
