"""Models as numpy arrays, in the file layout of FEDn's ``numpyhelper``.

A model file is a compressed npz whose members are named ``"0"``, ``"1"``, … in
layer order. numpy is imported only when one of these functions is called: the
base install of fedclient has no numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..domain.errors import TaskFailed


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise TaskFailed("numpy models need numpy: pip install numpy") from None
    return numpy


def load_arrays(path: str | Path) -> list[Any]:
    """The arrays of a numpyhelper model file, in layer order."""
    np = _numpy()
    with np.load(Path(path), allow_pickle=False) as data:
        names = set(data.files)
        count = 0
        while str(count) in names:
            count += 1
        if count != len(names):
            raise TaskFailed(f"{path} is not a numpyhelper model: its members must be named 0, 1, 2, …")
        return [data[str(i)] for i in range(count)]


def load_named_arrays(path: str | Path) -> dict[str, Any]:
    """Every member of an npz file by name (split learning keys embeddings and gradients by client id)."""
    np = _numpy()
    with np.load(Path(path), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def save_arrays(arrays: Iterable[Any] | Mapping[str, Any], path: str | Path) -> Path:
    """Write arrays as a numpyhelper model file (a mapping keeps its own member names).

    The file is written through a handle, so numpy never appends ``.npz`` to a path
    that lacks it (which would leave the intended file empty).
    """
    np = _numpy()
    members = (
        {str(k): np.asarray(v) for k, v in arrays.items()}
        if isinstance(arrays, Mapping)
        else {str(i): np.asarray(a) for i, a in enumerate(arrays)}
    )
    target = Path(path)
    with target.open("wb") as out:
        np.savez_compressed(out, **members)
    return target
