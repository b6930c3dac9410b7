"""The per-round Gaussian mechanism on numpy arrays: clip the update, add noise, rebuild the model.

The update is the trained model minus the global model it was trained from, taken in
float64 over all arrays together. It is scaled down to at most the clipping norm (L2
over every value of every array), Gaussian noise of one standard deviation is added to
each value, and the model released is the global model plus that noised delta, in the
global model's own dtypes. Casting back to a dtype rounds each value *towards the global
model*, so a released delta is never larger, value by value, than the noised clipped
delta it comes from: without noise the released update is within the clipping norm
exactly, whatever the dtypes (integer and bool arrays are included and noised too: a
counter such as a batch count is part of what the update reveals).

numpy is imported only when one of these functions runs: the base install has none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..domain.errors import TaskFailed

# How often a clip factor is nudged down when floating-point rounding left the norm a hair over.
_NUDGES = 64
# Rounding towards the global model: a value still too far after this many steps is the global value.
_STEPS = 4


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise TaskFailed("the privacy policy needs numpy: pip install 'fedclient[privacy]'") from None
    return numpy


def make_generator(seed: int | None = None) -> Any:
    """The noise's source: numpy's default generator (PCG64), from OS entropy unless ``seed`` is given.

    Only tests give a seed. A seed anyone knows would let the server subtract the noise.
    """
    return _numpy().random.default_rng(seed)


def l2_norm(arrays: Sequence[Any]) -> float:
    """The L2 norm of every value of every array together, in float64 (correctly summed across arrays)."""
    np = _numpy()
    squares = []
    for array in arrays:
        flat = np.asarray(array, dtype=np.float64).ravel()
        squares.append(float(np.dot(flat, flat)))
    return math.sqrt(math.fsum(squares))


def clip(delta: Sequence[Any], bound: float) -> tuple[list[Any], float]:
    """``delta`` (float64 arrays) scaled to an L2 norm of at most ``bound``; and the factor used (≤ 1)."""
    np = _numpy()
    arrays = [np.asarray(d, dtype=np.float64) for d in delta]
    norm = l2_norm(arrays)
    if not math.isfinite(norm):
        raise TaskFailed("the update has values that are not finite (NaN or infinity): it cannot be clipped")
    if norm <= bound:
        return arrays, 1.0
    factor = bound / norm
    for _ in range(_NUDGES):
        clipped = [a * factor for a in arrays]
        if l2_norm(clipped) <= bound:
            return clipped, factor
        factor = math.nextafter(factor, 0.0) * (1 - 2**-40)  # rounding left it a hair over: shrink
    return [np.zeros_like(a) for a in arrays], 0.0


def toward(global_array: Any, delta: Any) -> Any:
    """``global_array + delta`` in the global array's dtype, every value rounded towards the global one.

    So ``|released - global| <= |delta|`` for each value (as float64 computes it): floats step
    back with ``nextafter`` where rounding overshot; integers and bools truncate the delta
    towards zero and saturate at their range; any value still beyond that is the global value.
    """
    np = _numpy()
    g = np.asarray(global_array)
    g64 = g.astype(np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    dtype = g.dtype
    with np.errstate(over="ignore", invalid="ignore"):
        if dtype.kind == "f":
            out = np.asarray(g64 + delta).astype(dtype)
            for _ in range(_STEPS):
                over = np.asarray(~(np.abs(out.astype(np.float64) - g64) <= np.abs(delta)))
                if not over.any():
                    break
                out[over] = np.nextafter(out[over], g[over])
        else:
            low, high = (0, 1) if dtype.kind == "b" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
            out = np.asarray(np.clip(g64 + np.trunc(delta), low, high)).astype(dtype)
        over = np.asarray(~(np.abs(out.astype(np.float64) - g64) <= np.abs(delta)))
    if over.any():
        out[over] = g[over]
    return out


@dataclass(frozen=True)
class Released:
    """One update through the mechanism: the model to send, and what was done to it."""

    arrays: list[Any]
    norm: float  # of the update as trained
    factor: float  # the clip factor (1: within the norm already)
    released_norm: float  # of what leaves: released model minus global model

    @property
    def clipped(self) -> bool:
        return self.factor < 1.0


_KINDS = {"f": "float", "i": "integer", "u": "unsigned integer", "b": "bool"}


def privatize(
    global_arrays: Sequence[Any], trained_arrays: Sequence[Any], clipping_norm: float, stddev: float, rng: Any
) -> Released:
    """The released model: global + (delta clipped to ``clipping_norm``) + N(0, ``stddev``²) per value."""
    np = _numpy()
    if len(global_arrays) != len(trained_arrays):
        raise TaskFailed(
            f"the trained model has {len(trained_arrays)} arrays and the global model "
            f"{len(global_arrays)}: no update can be computed"
        )
    delta = []
    for index, (g, t) in enumerate(zip(global_arrays, trained_arrays, strict=True)):
        g, t = np.asarray(g), np.asarray(t)
        if g.shape != t.shape:
            raise TaskFailed(
                f"array {index} of the trained model has shape {t.shape}, the global model's {g.shape}: "
                "no update can be computed"
            )
        for which, array in (("global", g), ("trained", t)):
            if array.dtype.kind not in _KINDS:
                raise TaskFailed(
                    f"array {index} of the {which} model has dtype {array.dtype}: the privacy mechanism "
                    f"noises {', '.join(_KINDS.values())} arrays only"
                )
        with np.errstate(invalid="ignore", over="ignore"):
            delta.append(t.astype(np.float64) - g.astype(np.float64))
    norm = l2_norm(delta)
    clipped, factor = clip(delta, clipping_norm)
    noised = [c + rng.standard_normal(c.shape) * stddev for c in clipped] if stddev > 0 else clipped
    released = [toward(g, n) for g, n in zip(global_arrays, noised, strict=True)]
    released_norm = l2_norm(
        [
            r.astype(np.float64) - np.asarray(g).astype(np.float64)
            for r, g in zip(released, global_arrays, strict=True)
        ]
    )
    return Released(released, norm, factor, released_norm)
