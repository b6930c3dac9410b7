"""The tiny model's in-process callbacks (``fedclient simulate``): same work as train.py/validate.py."""

from pathlib import Path

import tiny


def train(model: Path, settings: dict) -> tuple[bytes, dict]:
    return tiny.to_bytes(tiny.step(tiny.load(model))), tiny.metadata()


def validate(model: Path) -> dict:
    return tiny.metrics(tiny.load(model))
