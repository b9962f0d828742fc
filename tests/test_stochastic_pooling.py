"""Stochastic pooling: shapes against torch's max pooling, the evaluation rule against exact arithmetic, the
training law by counting draws (with a bound that a wrong law fails), the gradient, the generator, the errors.

Statistical bounds allow 6 standard deviations (a false alarm has probability below 1e-8 per cell); each test
that uses one also shows that a wrong law misses the bound by far. Seeds come from ``companion.make_generator``,
so ``COMPANION_SEED_OFFSET`` moves every draw.
"""

import math
from fractions import Fraction

import pytest
import torch
from torch import nn

from companion import make_generator
from companion.regularization import (
    StochasticPool1d,
    StochasticPool2d,
    inverse_cdf_index,
    stochastic_pool,
)
from companion.testing.tolerances import assert_close
from conftest import CUDA

SDS = 6  # standard deviations a count or a mean may stray from its expectation

SHAPES = [  # (layer, torch's layer, kernel_size, stride, input shape)
    (StochasticPool1d, nn.MaxPool1d, 2, None, (2, 3, 10)),
    (StochasticPool1d, nn.MaxPool1d, 3, 2, (3, 10)),  # unbatched
    (StochasticPool1d, nn.MaxPool1d, 7, None, (4, 1, 7)),  # one window
    (StochasticPool1d, nn.MaxPool1d, 3, 1, (2, 3, 11)),  # overlapping windows
    (StochasticPool1d, nn.MaxPool1d, 2, 3, (1, 2, 9)),  # gaps between windows
    (StochasticPool1d, nn.MaxPool1d, 2, None, (0, 2, 6)),  # empty batch
    (StochasticPool2d, nn.MaxPool2d, 2, None, (2, 3, 8, 8)),
    (
        StochasticPool2d,
        nn.MaxPool2d,
        (2, 3),
        (1, 2),
        (3, 7, 9),
    ),  # unbatched, rectangular
    (StochasticPool2d, nn.MaxPool2d, 5, None, (1, 1, 5, 5)),
    (StochasticPool2d, nn.MaxPool2d, 3, 2, (2, 2, 6, 7)),
]


def relu_input(shape, seed=0, dtype=torch.float64):
    """Non-negative input with about half its entries zero, as after a ReLU."""
    return torch.randn(shape, generator=make_generator(seed), dtype=dtype).relu()


@pytest.mark.parametrize(
    "layer,theirs,k,s,shape",
    SHAPES,
    ids=[f"{c.__name__}-k{k}-s{s}-{sh}" for c, _, k, s, sh in SHAPES],
)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_output_shape_is_max_pooling_s(layer, theirs, k, s, shape, training):
    x = relu_input(shape)
    ours = layer(k, s).train(training)
    assert ours(x).shape == theirs(k, s)(x).shape


def exact_eval(x: torch.Tensor, k: tuple[int, ...], s: tuple[int, ...]) -> torch.Tensor:
    """Σa² / Σa for every window, in exact rational arithmetic, by a direct loop (then rounded to float64)."""
    lead, spatial = x.shape[: x.dim() - len(k)], x.shape[x.dim() - len(k) :]
    out_shape = [(n - ki) // si + 1 for n, ki, si in zip(spatial, k, s)]
    flat = x.reshape(-1, *spatial)
    out = torch.zeros(flat.shape[0], *out_shape, dtype=torch.float64)
    for b in range(flat.shape[0]):
        for j in (
            torch.cartesian_prod(*[torch.arange(n) for n in out_shape])
            .reshape(-1, len(k))
            .tolist()
        ):
            offsets = (
                torch.cartesian_prod(*[torch.arange(ki) for ki in k])
                .reshape(-1, len(k))
                .tolist()
            )
            a = [
                Fraction(
                    flat[(b, *[jj * ss + ii for jj, ss, ii in zip(j, s, i)])].item()
                )
                for i in offsets
            ]
            out[(b, *j)] = float(sum(v * v for v in a) / sum(a)) if sum(a) > 0 else 0.0
    return out.reshape(*lead, *out_shape)


EVAL = [
    (StochasticPool1d, 2, None, (2, 3, 10)),
    (StochasticPool1d, 3, 1, (3, 9)),
    (StochasticPool2d, 2, None, (2, 2, 6, 6)),
    (StochasticPool2d, 3, 2, (2, 7, 7)),
]


@pytest.mark.parametrize(
    "layer,k,s,shape", EVAL, ids=[f"{c.__name__}-k{k}-s{s}" for c, k, s, _ in EVAL]
)
def test_evaluation_is_the_probability_weighted_average(layer, k, s, shape):
    x = relu_input(shape, seed=1)
    n = layer.n_spatial
    x[(..., *[slice(0, k)] * n)] = 0  # the first window is all zeros
    kk = (k,) * n
    expected = exact_eval(x, kk, (s,) * n if s else kk)
    out = layer(k, s).eval()(x)
    # Σa and Σa² over K ≤ 9 non-negative terms, each within (K − 1)ε relative (plus ε for each product),
    # and one division: at most 2K + 1 ε of each output, and the outputs are at most the scale
    assert_close(out, expected, ulps=2 * math.prod(kk) + 1)
    assert (expected == 0).any() and torch.equal(
        out[expected == 0], expected[expected == 0]
    )


def counts_within(counts: torch.Tensor, n: int, p: torch.Tensor) -> bool:
    """Whether every cell's count is within SDS binomial standard deviations of n p (zero cells: exactly 0)."""
    sd = (n * p * (1 - p)).sqrt()
    return bool(((counts - n * p).abs() <= SDS * sd).all())


LAWS = [  # (window, kernel_size, layer) with distinct positive values, zeros among them
    (torch.tensor([1.0, 0.0, 2.0, 3.0, 4.0, 0.0]), 6, StochasticPool1d),
    (torch.tensor([[0.0, 1.0], [3.0, 6.0]]), 2, StochasticPool2d),
    (
        torch.tensor([[0.5, 0.0, 8.0], [0.0, 0.25, 1.25], [0.0, 0.0, 0.0]]),
        3,
        StochasticPool2d,
    ),
]


@pytest.mark.parametrize("window,k,layer", LAWS, ids=["1d-k6", "2d-k2", "2d-k3"])
def test_training_draws_follow_p_proportional_to_a(window, k, layer):
    draws = 20_000
    # the same window repeated along the last axis: (1, 1, …, draws·k) windows side by side
    x = (
        window.to(torch.float64)
        .repeat(*([1] * (window.dim() - 1)), draws)
        .reshape(1, 1, *window.shape[:-1], -1)
    )
    out = layer(k, generator=make_generator(2))(x).reshape(-1)
    assert out.numel() == draws
    values = window.reshape(-1).to(torch.float64)
    counts = torch.stack([(out == v).sum() for v in values]).to(torch.float64)
    # every draw is one of the window's elements, and never a zero
    assert counts[values > 0].sum() == draws and (out != 0).all()
    p = values / values.sum()
    assert counts_within(counts, draws, p), (counts, draws * p)
    # the bound has power: a uniform choice among the positive elements, or p ∝ a², misses it by far
    uniform = (values > 0).to(torch.float64) / (values > 0).sum()
    squared = values**2 / (values**2).sum()
    assert not counts_within(draws * uniform, draws, p) and not counts_within(
        draws * squared, draws, p
    )
    # the mean of the draws is the evaluation output Σp a, within SDS standard errors of the mean
    mean_eval = (
        layer(k).eval()(window.to(torch.float64).reshape(1, 1, *window.shape)).item()
    )
    sd = math.sqrt(((p * values**2).sum() - mean_eval**2) / draws)
    assert abs(out.mean().item() - mean_eval) <= SDS * sd
    # ... which the mean of the maximum (max pooling's output) misses
    assert abs(values.max().item() - mean_eval) > SDS * sd


def test_zeros_are_never_drawn_and_the_output_is_a_window_element():
    x = relu_input((4, 3, 16, 16), seed=3) * (
        torch.rand((4, 3, 16, 16), generator=make_generator(4)) < 0.3
    )
    x[0, 0, :2, :2] = torch.tensor(
        [[0.0, 1e-30], [0.0, 0.0]], dtype=torch.float64
    )  # one tiny positive element
    pool = StochasticPool2d(2, generator=make_generator(5))
    windows = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(4, 3, 8, 8, 4)
    for _ in range(20):
        out = pool(x)
        # the output is one of its window's elements
        assert (windows == out.unsqueeze(-1)).any(-1).all()
        # a window with a positive element outputs a positive element
        assert torch.equal(out > 0, (windows > 0).any(-1))
    assert out[0, 0, 0, 0] == 1e-30


@pytest.mark.parametrize(
    "dtype,tiny", [(torch.float64, 5e-324), (torch.float32, 1e-45)]
)
def test_inverse_cdf_boundaries_and_rounding(dtype, tiny):
    """With a subnormal sum, u·Σ rounds up to Σ: the index is capped at the last positive element."""
    a = torch.tensor([[tiny, 0.0], [0.0, 0.0], [2.0, 1.0]], dtype=dtype)
    u = torch.tensor([0.999, 0.999, 0.999], dtype=dtype)
    assert (u[0] * a[0].sum()) == a[0].sum()  # the rounding this case is about
    assert inverse_cdf_index(a, u).tolist() == [0, 0, 1]
    # the boundaries: c = (2, 3), so u·3 < 2 picks 0 and u·3 ≥ 2 picks 1
    b = torch.tensor([[2.0, 1.0]] * 4, dtype=dtype)
    assert inverse_cdf_index(
        b, torch.tensor([0.0, 0.6, 2 / 3 + 1e-6, 0.9], dtype=dtype)
    ).tolist() == [0, 0, 1, 1]
    # u ∈ [0, 1) falls in [c_{i-1}, c_i) ⇒ i: u = 0 skips leading zeros, and a threshold equal to c_i picks i + 1
    c = torch.tensor(
        [[0.0, 0.0, 2.0, 1.0, 1.0]] * 4, dtype=dtype
    )  # c = (0, 0, 2, 3, 4)
    assert inverse_cdf_index(
        c, torch.tensor([0.0, 0.5, 0.75, 0.25], dtype=dtype)
    ).tolist() == [2, 3, 4, 2]


GRADS = [
    (StochasticPool1d, 3, 2, (2, 3, 11)),
    (StochasticPool1d, 2, None, (3, 8)),
    (StochasticPool2d, 3, 2, (2, 2, 7, 7)),
    (StochasticPool2d, 2, None, (1, 3, 6, 6)),
]


@pytest.mark.parametrize(
    "layer,k,s,shape", GRADS, ids=[f"{c.__name__}-k{k}-s{s}" for c, k, s, _ in GRADS]
)
def test_gradient_reaches_the_drawn_element_only(layer, k, s, shape):
    n = math.prod(shape)
    # distinct positive values, so that a drawn value names its position
    perm = torch.randperm(n, generator=make_generator(6))
    x = (perm.to(torch.float64) + 1).reshape(shape).requires_grad_()
    position = torch.argsort(perm)  # the value v sits at position[v − 1]
    out = layer(k, s, generator=make_generator(7))(x)
    # integer upstream gradients: their sums are exact in any order
    g = torch.randint(1, 6, out.shape, generator=make_generator(8)).to(torch.float64)
    out.backward(g)
    expected = torch.zeros(n, dtype=torch.float64)
    expected.index_add_(
        0, position[(out.detach() - 1).long().reshape(-1)], g.reshape(-1)
    )
    assert torch.equal(x.grad, expected.reshape(shape))


def test_evaluation_gradient():
    x = (relu_input((2, 3, 6, 6), seed=9) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: StochasticPool2d(3, 1).eval()(t), (x,))
    assert torch.autograd.gradgradcheck(
        lambda t: StochasticPool2d(3, 1).eval()(t), (x,)
    )


def test_generator_seeds_the_draws():
    x = relu_input((4, 8, 32), seed=10)
    draw = lambda seed: StochasticPool1d(4, generator=make_generator(seed))(x)  # noqa: E731
    assert torch.equal(draw(11), draw(11))
    assert not torch.equal(draw(11), draw(12))
    # without a generator: torch's default one
    torch.manual_seed(0)
    first = StochasticPool1d(4)(x)
    torch.manual_seed(0)
    assert torch.equal(StochasticPool1d(4)(x), first)


def test_functional_matches_the_layers():
    x = relu_input((2, 3, 8, 8), seed=13)
    ours = StochasticPool2d((2, 4), 2, generator=make_generator(14))(x)
    assert torch.equal(
        stochastic_pool(x, (2, 4), (2, 2), generator=make_generator(14)), ours
    )
    assert torch.equal(
        stochastic_pool(x, (2, 4), (2, 2), training=False),
        StochasticPool2d((2, 4), 2).eval()(x),
    )


def test_half_precision_keeps_its_dtype():
    x = relu_input((2, 3, 8), seed=15)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        pool = StochasticPool1d(2, generator=make_generator(16))
        assert (
            pool(x.to(dtype)).dtype == dtype and pool.eval()(x.to(dtype)).dtype == dtype
        )


def test_repr():
    assert repr(StochasticPool1d(3)) == "StochasticPool1d(kernel_size=3, stride=3)"
    assert (
        repr(StochasticPool2d((2, 3), 1))
        == "StochasticPool2d(kernel_size=(2, 3), stride=1)"
    )


ERRORS = [
    (lambda: StochasticPool1d(0), "kernel_size must be greater than zero, but got 0"),
    (lambda: StochasticPool1d(-2), "kernel_size must be greater than zero, but got -2"),
    (lambda: StochasticPool1d(2, 0), "stride must be greater than zero, but got 0"),
    (
        lambda: StochasticPool2d((2, 0)),
        r"kernel_size must be greater than zero, but got \(2, 0\)",
    ),
    (
        lambda: StochasticPool2d(2, (1, -1)),
        r"stride must be greater than zero, but got \(1, -1\)",
    ),
    (lambda: StochasticPool2d((2, 2, 2)), "kernel_size must be an int or 2 ints"),
    (lambda: StochasticPool1d(2.0), "kernel_size must be an int or 1 ints"),
    (
        lambda: StochasticPool1d(2)(torch.ones(1, 1, 2, 4)),
        r"expects a 2-D \(C, \*L\) or 3-D",
    ),
    (lambda: StochasticPool2d(2)(torch.ones(4)), r"expects a 3-D \(C, \*L\) or 4-D"),
    (lambda: StochasticPool1d(5)(torch.ones(1, 2, 4)), "the kernel spans 5 positions"),
    (
        lambda: StochasticPool1d(2)(torch.tensor([[1.0, -0.5, 2.0]])),
        "non-negative input .* minimum is -0.5",
    ),
    (
        lambda: StochasticPool1d(2).eval()(torch.tensor([[1.0, -0.5, 2.0]])),
        "non-negative input .* minimum is -0.5",
    ),
    (
        lambda: StochasticPool1d(2)(torch.tensor([[1.0, float("nan")]])),
        "non-negative input .* minimum is nan",
    ),
]


@pytest.mark.parametrize("make,message", ERRORS, ids=range(len(ERRORS)))
def test_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@CUDA
def test_cuda_float32():
    x = relu_input((4, 3, 12, 12), seed=17, dtype=torch.float32)
    cuda = x.cuda()
    # the same CPU generator's uniforms, and correctly rounded sums: the same draws as on the CPU
    on_gpu = StochasticPool2d(2, generator=make_generator(18))(cuda)
    assert on_gpu.is_cuda and torch.equal(
        on_gpu.cpu(), StochasticPool2d(2, generator=make_generator(18))(x)
    )
    # the default generator of the GPU: still a window element (a draw differs from the CPU's, the law does not)
    out = StochasticPool2d(2)(cuda)
    windows = cuda.unfold(2, 2, 2).unfold(3, 2, 2).reshape(4, 3, 6, 6, 4)
    assert (windows == out.unsqueeze(-1)).any(-1).all()
    # evaluation: Σa and Σa² over 4 terms in float32, one division: 2·4 + 1 ε of the scale
    expected = exact_eval(x.double(), (2, 2), (2, 2)).float()
    assert_close(StochasticPool2d(2).eval()(cuda).cpu(), expected, ulps=9)
