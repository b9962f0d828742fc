"""companion.regularization.signal_augment: the roll and the smoothing against torch's and scipy's, each
transformation's effect measured on hand-made signals, the docstring's equation from the same draws, statistics of
the noise, reproducibility from a seed, and argument errors. Float64 unless stated."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from companion.regularization.signal_augment import (
    CORR_WIDTH,
    SignalAugmentation,
    smooth,
    translate,
)
from companion.testing.tolerances import assert_close

L = 40


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def signals(n=6, length=L, seed=0, dtype=torch.float64):
    return torch.randn(n, length, generator=gen(seed), dtype=dtype)


def ramp_signals(n, length=L):
    """Row n is 0, 1, ..., L − 1: every sample says where it came from."""
    return torch.arange(length, dtype=torch.float64).repeat(n, 1)


# --- the roll and the smoothing against references ---


@pytest.mark.parametrize(
    "shifts",
    [[0, 1, -1, 5, -13, 39], [40, -40, 41, -41, 80, 3]],
    ids=["within", "beyond-L"],
)
def test_translate_is_torch_roll_per_signal(shifts):
    x = signals()
    expected = torch.stack([torch.roll(row, k) for row, k in zip(x, shifts)])
    assert torch.equal(
        translate(x, torch.tensor(shifts)), expected
    )  # a permutation of the same numbers: exact


@pytest.mark.parametrize("length", [40, 7, 3], ids=["L40", "L7-kernel-wraps", "L3"])
@pytest.mark.parametrize(
    "width", [CORR_WIDTH, 0.5, 2.0], ids=["generator", "narrow", "wide"]
)
def test_smooth_is_scipy_wrap_filter_at_unit_energy(length, width):
    """scipy's circular Gaussian filter (unit sum) divided by its kernel's norm, for kernels wider than the signal
    too."""
    z = signals(4, length)
    delta = np.eye(length)[0]
    norm = np.linalg.norm(gaussian_filter1d(delta, width, mode="wrap"))
    expected = torch.tensor(
        gaussian_filter1d(z.numpy(), width, axis=1, mode="wrap") / norm
    )
    # an L-term dot product per sample against scipy's (2r + 1)-term correlation: tens of ε of the values' scale
    assert_close(smooth(z, width), expected, ulps=64)


@pytest.mark.parametrize("length", [40, 7], ids=str)
def test_smooth_kernel_has_unit_energy_and_is_symmetric(length):
    """The impulse response is the kernel w: Σ w² = 1 (unit variance for white noise), w[d] = w[−d]."""
    w = smooth(torch.eye(length, dtype=torch.float64)[:1])[0]
    assert_close(
        w.pow(2).sum(), torch.tensor(1.0, dtype=torch.float64), ulps=16
    )  # a sum of L squares
    assert torch.equal(
        w[1:], w[1:].flip(0)
    )  # the same Gaussian values added in the same order
    radius = int(4 * CORR_WIDTH + 0.5)
    assert (
        w[radius] > 0 and (w[radius + 1 : length - radius] == 0).all()
    )  # truncated at r = ⌊4σ + 1/2⌋


# --- each transformation on a hand-made signal ---

N = 3000


def test_shift_only_rolls_by_at_most_shift():
    """Each output is 0..L−1 rolled by some k; k is read off the first sample, lies in {−4, ..., 4}, and all
    nine values occur among 3000 signals (a value is missing with probability below 9 (8/9)^3000)."""
    out, _ = SignalAugmentation(shift=4, generator=gen(1))(
        ramp_signals(N), torch.zeros(N)
    )
    k = (-out[:, 0]).long() % L  # x'[0] = x[(0 − k) mod L] = (−k) mod L
    k = torch.where(k > L // 2, k - L, k)
    assert torch.equal(out, translate(ramp_signals(N), k))
    assert set(k.tolist()) == set(range(-4, 5))


def test_scale_only_multiplies_each_signal_by_one_factor():
    """x' / x is one factor per signal, inside [0.8, 1.2], and the factors reach within 0.01 of both ends
    (each end missed with probability (1 − 0.01 / 0.4)^3000 < 1e-32)."""
    x = ramp_signals(N) + 1.0
    out, _ = SignalAugmentation(scale=0.2, generator=gen(2))(x, torch.zeros(N))
    ratio = out / x
    assert_close(
        ratio, ratio[:, :1].expand_as(ratio), ulps=4
    )  # one product and one division per sample
    a = ratio[:, 0]
    assert 0.8 <= a.min() < 0.81 and 1.19 < a.max() <= 1.2


def test_shear_only_adds_a_centred_ramp():
    """x' − x = c (i / (L − 1) − 1/2): the ramp's rise c over the signal, |c| ≤ 0.5, zero at the middle."""
    x = signals(N)
    out, _ = SignalAugmentation(shear=0.5, generator=gen(3))(x, torch.zeros(N))
    added = out - x
    c = added[:, -1] - added[:, 0]
    ramp = torch.linspace(-0.5, 0.5, L, dtype=torch.float64)
    # one rounding when adding, one when subtracting, relative to the signal's scale (about 4)
    assert_close(added, c[:, None] * ramp, ulps=64, scale=x.abs().max())
    assert c.abs().max() <= 0.5 + 1e-12 and c.abs().max() > 0.49


@pytest.mark.parametrize("kind", ["noise", "corr_noise"])
def test_noise_has_the_requested_std_and_correlation(kind):
    """Added to zeros, the noise has standard deviation σ = 0.3 and neighbour correlation 0 (white) or
    Σ_d w[d] w[d + 1] (correlated). 3000 × 40 samples: the std's standard error is below 0.5 % (a few % with the
    correlation), the correlation's below 0.01; the bounds are 4 % and 0.04."""
    out, _ = SignalAugmentation(**{kind: 0.3}, generator=gen(4))(
        torch.zeros(N, L, dtype=torch.float64), None
    )
    assert abs(out.std().item() / 0.3 - 1) < 0.04
    assert abs(out.mean().item()) < 0.3 * 0.04
    w = smooth(torch.eye(L, dtype=torch.float64)[:1])[0]
    expected = 0.0 if kind == "noise" else (w * w.roll(1)).sum().item()
    measured = (out * out.roll(1, dims=1)).mean().item() / out.pow(2).mean().item()
    assert abs(measured - expected) < 0.04, (measured, expected)
    if kind == "corr_noise":
        assert (
            expected > 0.6
        )  # neighbours of the generator's width share most of their noise


def test_all_together_is_the_docstring_equation_from_the_same_draws():
    """x' = a x[(i − k) mod L] + σ_c C z + σ ε + c ramp, with the draws taken from a copy of the generator in the
    documented order (scale, shift, correlated noise, white noise, shear)."""
    x, g = signals(50), gen(5)
    out, _ = SignalAugmentation(
        shift=3, scale=0.1, noise=0.05, corr_noise=0.2, shear=0.4, generator=g
    )(x, None)
    r = gen(5)
    a = 0.9 + 0.2 * torch.rand(50, generator=r, dtype=torch.float64)
    k = torch.randint(-3, 4, (50,), generator=r)
    z = torch.randn(50, L, generator=r, dtype=torch.float64)
    eps = torch.randn(50, L, generator=r, dtype=torch.float64)
    c = -0.4 + 0.8 * torch.rand(50, generator=r, dtype=torch.float64)
    ramp = torch.linspace(-0.5, 0.5, L, dtype=torch.float64)
    expected = (
        translate(a[:, None] * x, k) + 0.2 * smooth(z) + 0.05 * eps + c[:, None] * ramp
    )
    assert_close(
        out, expected, ulps=16
    )  # the same operations; a few roundings of the values' scale


# --- identity, shapes, labels, reproducibility ---


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_zero_strength_is_the_identity_and_labels_pass(dtype):
    x, y = signals(dtype=dtype), torch.arange(6)
    out, y2 = SignalAugmentation(generator=gen())(x, y)
    assert torch.equal(out, x) and y2 is y


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("length", [40, 5], ids=str)
def test_shape_and_dtype_are_kept(dtype, length):
    x = signals(7, length, dtype=dtype)
    out, _ = SignalAugmentation(
        shift=2, scale=0.2, noise=0.1, corr_noise=0.1, shear=0.3, generator=gen()
    )(x, None)
    assert out.shape == x.shape and out.dtype == dtype
    assert not torch.equal(out, x)


def test_reproducible_from_a_seed_and_different_across_seeds():
    augment = lambda seed: SignalAugmentation(
        shift=4,
        scale=0.2,
        noise=0.1,
        corr_noise=0.1,
        shear=0.3,  # noqa: E731
        generator=gen(seed),
    )(signals(), None)[0]
    assert torch.equal(augment(7), augment(7))
    assert not torch.equal(augment(7), augment(8))


def test_each_call_draws_new_parameters():
    augment = SignalAugmentation(shift=4, noise=0.1, generator=gen())
    x = signals()
    assert not torch.equal(augment(x, None)[0], augment(x, None)[0])


# --- errors ---

ERRORS = [
    (lambda: SignalAugmentation(shift=-1), "shift must be non-negative, got -1"),
    (
        lambda: SignalAugmentation(shift=1.5),
        "shift must be a whole number of samples, got 1.5",
    ),
    (lambda: SignalAugmentation(scale=1.0), r"scale must be in \[0, 1\), got 1.0"),
    (lambda: SignalAugmentation(scale=-0.1), r"scale must be in \[0, 1\), got -0.1"),
    (lambda: SignalAugmentation(noise=-0.1), "noise must be non-negative, got -0.1"),
    (
        lambda: SignalAugmentation(corr_noise=-0.1),
        "corr_noise must be non-negative, got -0.1",
    ),
    (lambda: SignalAugmentation(shear=-0.1), "shear must be non-negative, got -0.1"),
    (
        lambda: SignalAugmentation(noise=0.1)(torch.zeros(2, 1, 40), None),
        r"expected a batch of signals shaped \(N, L\), got shape \(2, 1, 40\)",
    ),
    (
        lambda: translate(torch.zeros(40), torch.tensor([1])),
        r"expected a batch of signals shaped \(N, L\)",
    ),
    (lambda: smooth(torch.zeros(2, 40), width=0.0), "width must be positive, got 0.0"),
]


@pytest.mark.parametrize("call, message", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_invalid_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
