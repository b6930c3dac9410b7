"""The per-round Gaussian mechanism on arrays (adapters.dp_mechanism), for any shapes and dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fedclient.adapters.dp_mechanism import clip, l2_norm, make_generator, privatize, toward
from fedclient.domain.errors import TaskFailed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = [
    np.dtype(t)
    for t in (
        "float16",
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
    )
]


@st.composite
def models(draw: st.DrawFn) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A global model and a trained one: 1-4 arrays, each of any shape (0-d included) and dtype."""
    glob, trained = [], []
    for _ in range(draw(st.integers(1, 4))):
        dtype = draw(st.sampled_from(DTYPES))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
        if dtype.kind == "f":
            # finite values of the dtype's own range (float16 tops out at 65504)
            width = 16 if dtype == np.float16 else 32 if dtype == np.float32 else 64
            elements = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=width)
        else:
            elements = None  # every value of an integer or bool dtype
        glob.append(draw(hnp.arrays(dtype, shape, elements=elements)))
        trained.append(draw(hnp.arrays(dtype, shape, elements=elements)))
    return glob, trained


def _released_delta(released: list[np.ndarray], glob: list[np.ndarray]) -> list[np.ndarray]:
    return [r.astype(np.float64) - g.astype(np.float64) for r, g in zip(released, glob, strict=True)]


@PROPERTY
@given(model=models(), bound=st.floats(1e-6, 1e3))
def test_the_clipped_update_never_exceeds_the_bound(
    model: tuple[list[np.ndarray], list[np.ndarray]], bound: float
) -> None:
    glob, trained = model
    released = privatize(glob, trained, bound, 0.0, make_generator(0))
    delta = _released_delta(released.arrays, glob)
    assert released.released_norm <= bound
    assert l2_norm(delta) <= bound
    # an independent measure (numpy's own norm of everything flattened), to rounding of the sum
    flat = np.concatenate([d.ravel() for d in delta]) if delta else np.zeros(0)
    assert float(np.linalg.norm(flat)) <= bound * (1 + 1e-12)
    # the released model keeps the global model's layout
    assert [(r.shape, r.dtype) for r in released.arrays] == [(g.shape, g.dtype) for g in glob]


@PROPERTY
@given(
    arrays=st.lists(
        hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3), elements=st.floats(-1e6, 1e6)),
        min_size=1,
        max_size=4,
    ),
    bound=st.floats(1e-9, 1e6),
)
def test_clip_scales_down_to_the_bound_and_leaves_smaller_updates_alone(
    arrays: list[np.ndarray], bound: float
) -> None:
    norm = l2_norm(arrays)
    clipped, factor = clip(arrays, bound)
    assert l2_norm(clipped) <= bound
    if norm <= bound:
        assert factor == 1.0 and all(np.array_equal(c, a) for c, a in zip(clipped, arrays, strict=True))
    else:
        assert 0 <= factor < 1 and l2_norm(clipped) == pytest.approx(bound, rel=1e-9)


@settings(max_examples=12, deadline=None)
@given(stddev=st.floats(1e-3, 50.0), seed=st.integers(0, 2**32 - 1))
def test_the_noise_has_the_configured_standard_deviation(stddev: float, seed: int) -> None:
    """An update of zeros: what is released is the noise alone; 200 000 values pin its σ within 1 %."""
    shape = (400, 500)
    glob = [np.zeros(shape), np.zeros(7)]
    released = privatize(glob, glob, clipping_norm=1.0, stddev=stddev, rng=make_generator(seed))
    noise = np.concatenate([a.ravel() for a in released.arrays])
    # the sample σ of n normal values has a relative standard error of 1/√(2n) ≈ 0.16 %: 1 % is > 6 of those
    assert float(noise.std()) == pytest.approx(stddev, rel=0.01)
    assert abs(float(noise.mean())) < 6 * stddev / math.sqrt(noise.size)


def test_what_is_released_is_global_plus_the_noised_clipped_delta() -> None:
    rng = np.random.default_rng(7)
    glob = [rng.normal(size=(20, 10)), rng.normal(size=10)]
    trained = [g + rng.normal(size=g.shape) for g in glob]  # norm ≈ 14.8, far over the bound
    released = privatize(glob, trained, clipping_norm=0.5, stddev=0.1, rng=make_generator(42))
    delta = [t - g for t, g in zip(trained, glob, strict=True)]
    scale = 0.5 / l2_norm(delta)
    noise = make_generator(42)  # the same generator, seeded alike, draws the same noise
    expected = [
        g + d * scale + noise.standard_normal(g.shape) * 0.1 for g, d in zip(glob, delta, strict=True)
    ]
    for got, want in zip(released.arrays, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert released.clipped and released.norm == pytest.approx(l2_norm(delta))
    assert released.factor == pytest.approx(scale)


def test_an_update_within_the_bound_is_released_as_trained_without_noise() -> None:
    glob = [np.zeros((3, 3), np.float32), np.arange(4, dtype=np.int64)]
    trained = [np.full((3, 3), 0.1, np.float32), np.arange(4, dtype=np.int64)]
    released = privatize(glob, trained, clipping_norm=1.0, stddev=0.0, rng=make_generator(0))
    assert not released.clipped
    np.testing.assert_array_equal(released.arrays[0], trained[0])
    np.testing.assert_array_equal(released.arrays[1], trained[1])


def test_rounding_goes_towards_the_global_model() -> None:
    """float32 cannot hold 1e6 + 0.04: the nearest value up would overshoot, so the one below is taken."""
    g = np.array([1e6, 0.0], np.float32)
    out = toward(g, np.array([0.04, -3.7]))
    assert out.dtype == np.float32 and out[0] == np.float32(1e6)
    ints = toward(np.array([5, 250], np.uint8), np.array([-2.9, 40.0]))
    assert ints.tolist() == [3, 255]  # truncated towards zero, saturated at the dtype's range
    assert toward(np.array([True]), np.array([-0.6])).tolist() == [True]


@pytest.mark.parametrize(
    ("glob", "trained", "message"),
    [
        ([np.zeros(3)], [np.zeros(3), np.zeros(1)], "the trained model has 2 arrays and the global model 1"),
        (
            [np.zeros(3)],
            [np.zeros(4)],
            r"array 0 of the trained model has shape \(4,\), the global model's \(3,\)",
        ),
        ([np.zeros(2, complex)], [np.zeros(2, complex)], "array 0 of the global model has dtype complex128"),
        ([np.zeros(2)], [np.array([1.0, np.nan])], "not finite"),
        ([np.zeros(2)], [np.array([np.inf, 0.0])], "not finite"),
    ],
)
def test_an_update_that_cannot_be_clipped_is_refused(
    glob: list[np.ndarray], trained: list[np.ndarray], message: str
) -> None:
    with pytest.raises(TaskFailed, match=message):
        privatize(glob, trained, 1.0, 0.0, make_generator(0))


def test_the_generator_is_seeded_or_from_the_system() -> None:
    assert make_generator(3).standard_normal() == make_generator(3).standard_normal()
    assert make_generator().standard_normal(4).tolist() != make_generator().standard_normal(4).tolist()
