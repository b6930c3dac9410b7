"""The tiny model's in-process callbacks (``fedclient simulate``): same work as train.py/validate.py.

The callback trainer's contract (``fedclient.adapters.trainers.callback_trainer``) with
models as paths: ``train(model, settings) -> (model, metadata)`` (the model here as bytes,
metadata with ``num_examples``) and ``validate(model) -> metrics``.
"""

from pathlib import Path

import tiny


def train(model: Path, settings: dict) -> tuple[bytes, dict]:
    return tiny.to_bytes(tiny.step(tiny.load(model))), tiny.metadata()


def validate(model: Path) -> dict:
    return tiny.metrics(tiny.load(model))
