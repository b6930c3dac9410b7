"""FedAvg over numpy npz models in FEDn's numpyhelper layout (arrays under keys "0", "1", …)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt


def load_arrays(path: Path) -> list[npt.NDArray[np.float64]]:
    with np.load(path, allow_pickle=False) as npz:
        return [np.asarray(npz[str(i)], dtype=np.float64) for i in range(len(npz.files))]


def save_arrays(arrays: Sequence[npt.NDArray[np.float64]], path: Path) -> None:
    with path.open("wb") as out:
        np.savez_compressed(out, **{str(i): a for i, a in enumerate(arrays)})


def fedavg(models: Sequence[tuple[Path, float]], out: Path) -> None:
    """Average the models weighted by their example counts; loads one model at a time."""
    if not models:
        raise ValueError("FedAvg needs at least one model")
    total = float(sum(weight for _, weight in models))
    if total <= 0:
        raise ValueError("FedAvg needs a positive total number of examples")
    acc: list[npt.NDArray[np.float64]] | None = None
    for path, weight in models:
        arrays = load_arrays(path)
        if acc is None:
            acc = [a * (weight / total) for a in arrays]
            continue
        if [a.shape for a in arrays] != [a.shape for a in acc]:
            raise ValueError(f"model {path.name} does not have the shape of the others")
        for mean, a in zip(acc, arrays, strict=True):
            mean += a * (weight / total)
    assert acc is not None
    save_arrays(acc, out)
