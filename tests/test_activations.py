"""companion.nn activations against torch.nn: one parity table over constructor arguments and input
shapes (float64: output, input gradient, parameter gradients), kinks and extreme inputs, gradcheck and
gradgradcheck of every hand-written backward, the module contract, and Maxout against its definition."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.nn import activation_layers as L
from companion.nn import activations as A
from companion.testing.parity import assert_modules_close
from companion.testing.tolerances import assert_close

# Bounds in units of ε·scale (scale: the largest magnitude of torch's values; see companion.testing.tolerances).
# An activation is a few elementwise operations, exp/expm1/erf among them, whose vectorized kernels
# (default, AVX2, AVX-512) round differently by an ulp or two; softmax adds a sum over one axis. 64 ε
# leaves room for that and still fails a wrong formula, which is off by ≥ 1e-8 relative (see
# tests/test_tolerances.py).
PARITY_ULPS = 64
EXTREME_ULPS = 64  # inputs up to ±1000: outputs up to 1000, measured against that scale
GRADCHECK = dict(
    eps=1e-6, atol=1e-7, rtol=1e-5
)  # finite differences of float64 functions

# (name, constructor arguments): every module with each of its options
MODULE_CASES = [
    ("Sigmoid", {}),
    ("Tanh", {}),
    ("ReLU", {}),
    ("ReLU", dict(inplace=True)),
    ("LeakyReLU", {}),
    ("LeakyReLU", dict(negative_slope=0.2)),
    ("LeakyReLU", dict(negative_slope=0.0)),
    ("LeakyReLU", dict(negative_slope=-0.3)),
    ("LeakyReLU", dict(negative_slope=1.7)),
    ("LeakyReLU", dict(negative_slope=0.1, inplace=True)),
    ("PReLU", {}),
    ("PReLU", dict(init=0.1)),
    ("PReLU", dict(num_parameters=3)),
    ("PReLU", dict(num_parameters=3, init=-0.5)),
    ("ELU", {}),
    ("ELU", dict(alpha=0.5)),
    ("ELU", dict(alpha=2.0)),
    ("ELU", dict(alpha=0.0)),
    ("ELU", dict(alpha=1.3, inplace=True)),
    ("GELU", {}),
    ("GELU", dict(approximate="tanh")),
    ("SiLU", {}),
    ("SiLU", dict(inplace=True)),
    ("Softmax", dict(dim=0)),
    ("Softmax", dict(dim=1)),
    ("Softmax", dict(dim=-1)),
    ("LogSoftmax", dict(dim=0)),
    ("LogSoftmax", dict(dim=1)),
    ("LogSoftmax", dict(dim=-1)),
]
SHAPES = [(7, 3), (2, 3, 5), (4, 3, 2, 2), (1, 3), (2, 3, 1, 2, 2)]
ELEMENTWISE_SHAPES = [
    (),
    (9,),
]  # shapes that also work for element-wise modules (not PReLU(3) / dim=1)


def _ids(case):
    name, kwargs = case
    return name + "".join(f"-{k}={v}" for k, v in kwargs.items())


class OnACopy(nn.Module):
    """Runs ``module`` on a non-leaf copy of the input: in-place modules cannot overwrite a leaf that
    requires grad, and ``compare_modules`` passes leaves."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x * 1.0)


def _pair(name, kwargs, dtype=torch.float64, device="cpu"):
    ours, theirs = getattr(L, name)(**kwargs), getattr(nn, name)(**kwargs)
    if kwargs.get("inplace"):
        ours, theirs = OnACopy(ours), OnACopy(theirs)
    return ours.to(device=device, dtype=dtype), theirs.to(device=device, dtype=dtype)


def _input(shape, scale=3.0, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g, dtype=dtype)).to(device)


def _shapes_for(name, kwargs):
    shapes = list(SHAPES)
    if kwargs.get("num_parameters", 1) == 1 and kwargs.get("dim") in (None, 0, -1):
        shapes += ELEMENTWISE_SHAPES
    return shapes


# -- parity with torch -------------------------------------------------------------------------------

PARITY = [(case, shape) for case in MODULE_CASES for shape in _shapes_for(*case)]


@pytest.mark.parametrize(
    "case,shape", PARITY, ids=[f"{_ids(c)}-{s}" for c, s in PARITY]
)
def test_parity_with_torch(case, shape):
    """Output, input gradient and parameter gradients within PARITY_ULPS of torch's, in float64."""
    ours, theirs = _pair(*case)
    assert_modules_close(ours, theirs, _input(shape), ulps=PARITY_ULPS)


KINKS = torch.tensor(
    [0.0, -0.0, 1e-300, -1e-300, 1e-8, -1e-8, 2.0, -2.0], dtype=torch.float64
)


@pytest.mark.parametrize("case", MODULE_CASES, ids=_ids)
def test_kinks_follow_torch(case):
    """At and around x = 0 (±0, subnormal, tiny) the values and derivatives equal torch's within 8 ε·scale
    (a wrong convention, ReLU'(0) = 1 say, is off by the whole scale): ReLU'(0) = 0, LeakyReLU'(0) = s,
    PReLU'(0) = a, ELU'(0) = α, as torch."""
    x = KINKS.repeat(2, 1, 3).reshape(2, 3, 8)  # three channels, every kink in each
    ours, theirs = _pair(*case)
    assert_modules_close(ours, theirs, x, ulps=8)


def test_kink_conventions_explicitly():
    """The derivative at exactly 0, written out."""
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    expected = {
        "ReLU": 0.0,
        "LeakyReLU": 0.2,
        "ELU": 0.7,
        "PReLU": 0.3,
        "GELU": 0.5,
        "SiLU": 0.5,
    }
    modules = {
        "ReLU": L.ReLU(),
        "LeakyReLU": L.LeakyReLU(0.2),
        "ELU": L.ELU(0.7),
        "PReLU": L.PReLU(init=0.3, dtype=torch.float64),
        "GELU": L.GELU(),
        "SiLU": L.SiLU(),
    }
    for name, module in modules.items():
        (g,) = torch.autograd.grad(module(x).sum(), x)
        assert g.item() == expected[name], (
            name
        )  # exact: at 0 each derivative is one correctly rounded product


EXTREME = torch.tensor(
    [
        [-1000.0, 1000.0, 0.0, 1.0],
        [1000.0, 999.0, -1000.0, 500.0],
        [-1000.0, -1000.0, -999.0, -1000.0],
    ],
    dtype=torch.float64,
)


@pytest.mark.parametrize(
    "case", [c for c in MODULE_CASES if c[1].get("num_parameters", 1) == 1], ids=_ids
)
def test_extreme_inputs(case):
    """Inputs of ±1000 (softmax and sigmoid of ±1000 included): finite outputs, and outputs and
    gradients within EXTREME_ULPS of torch's."""
    ours, theirs = _pair(*case)
    assert_modules_close(ours, theirs, EXTREME, ulps=EXTREME_ULPS)
    out = ours(EXTREME.clone())
    assert torch.isfinite(out).all()


def test_softmax_of_large_logits_is_exact():
    """softmax([1000, 1000, −1000]) = [½, ½, 0] and log-softmax stays finite: the max is subtracted first."""
    x = torch.tensor([1000.0, 1000.0, -1000.0], dtype=torch.float64)
    assert torch.equal(
        L.Softmax(dim=0)(x), torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    )
    log = L.LogSoftmax(dim=0)(x)
    assert (
        torch.isfinite(log).all()
        and abs(log[2].item() - (-2000.0 - math.log(2.0))) < 1e-12
    )


def test_sigmoid_of_extremes():
    """σ(±1000) = 1 and 0 exactly, with derivative 0 (not NaN)."""
    x = torch.tensor([-1000.0, 1000.0], dtype=torch.float64, requires_grad=True)
    y = L.Sigmoid()(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert y.tolist() == [0.0, 1.0] and g.tolist() == [0.0, 0.0]


# -- gradcheck and gradgradcheck ------------------------------------------------------------------------

FUNCTION_CASES = [
    ("sigmoid", lambda x: A.SigmoidFunction.apply(x)),
    ("tanh", lambda x: A.TanhFunction.apply(x)),
    ("relu", lambda x: A.ReLUFunction.apply(x)),
    ("leaky_relu", lambda x: A.LeakyReLUFunction.apply(x, 0.2)),
    ("leaky_relu_negative", lambda x: A.LeakyReLUFunction.apply(x, -0.3)),
    ("elu", lambda x: A.ELUFunction.apply(x, 1.0)),
    ("elu_alpha", lambda x: A.ELUFunction.apply(x, 0.4)),
    ("gelu", lambda x: A.GELUFunction.apply(x, "none")),
    ("gelu_tanh", lambda x: A.GELUFunction.apply(x, "tanh")),
    ("silu", lambda x: A.SiLUFunction.apply(x)),
    ("softmax_dim1", lambda x: A.SoftmaxFunction.apply(x, 1)),
    ("softmax_dim0", lambda x: A.SoftmaxFunction.apply(x, 0)),
    ("log_softmax_dim1", lambda x: A.LogSoftmaxFunction.apply(x, 1)),
    ("log_softmax_dim-1", lambda x: A.LogSoftmaxFunction.apply(x, -1)),
    ("maxout", lambda x: A.MaxoutFunction.apply(x, 2)),
    ("maxout3", lambda x: A.MaxoutFunction.apply(x.reshape(4, 6), 3)),
    # the modules' in-place paths (on a copy: gradcheck's inputs are leaves)
    ("relu_inplace", lambda x: L.ReLU(inplace=True)(x.clone())),
    ("leaky_inplace", lambda x: L.LeakyReLU(0.1, inplace=True)(x.clone())),
    ("elu_inplace", lambda x: L.ELU(inplace=True)(x.clone())),
    ("silu_inplace", lambda x: L.SiLU(inplace=True)(x.clone())),
]


def _away_from_kinks(shape=(4, 6), seed=1):
    """Random float64 inputs with |x| ≥ 0.1 (finite differences must not straddle a kink)."""
    x = _input(shape, scale=1.5, seed=seed)
    return (x + 0.1 * x.sign()).requires_grad_()


@pytest.mark.parametrize("name,fn", FUNCTION_CASES, ids=[c[0] for c in FUNCTION_CASES])
def test_gradcheck(name, fn):
    """The hand-written backward equals finite differences (eps 1e-6, atol 1e-7, rtol 1e-5)."""
    assert torch.autograd.gradcheck(fn, (_away_from_kinks(),), **GRADCHECK)


@pytest.mark.parametrize("name,fn", FUNCTION_CASES, ids=[c[0] for c in FUNCTION_CASES])
def test_gradgradcheck(name, fn):
    """The backward is itself differentiable: second derivatives equal finite differences of the backward."""
    assert torch.autograd.gradgradcheck(fn, (_away_from_kinks(),), **GRADCHECK)


@pytest.mark.parametrize(
    "channels,shape",
    [(1, (5, 4)), (3, (5, 3)), (3, (2, 3, 4)), (2, (2, 2, 3, 3))],
    ids=str,
)
def test_prelu_gradcheck_and_gradgradcheck(channels, shape):
    """PReLU's backward for the input and the slopes, first and second order (same tolerances)."""
    x = _away_from_kinks(shape, seed=2)
    w = torch.linspace(-0.5, 0.7, channels, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(A.PReLUFunction.apply, (x, w), **GRADCHECK)
    assert torch.autograd.gradgradcheck(A.PReLUFunction.apply, (x, w), **GRADCHECK)


def test_second_derivatives_match_torch():
    """d²y/dx² through our backward equals torch's double backward within PARITY_ULPS."""
    x = _input((50,), scale=2.0, seed=3)
    pairs = [
        (A.SigmoidFunction.apply, torch.sigmoid),
        (A.TanhFunction.apply, torch.tanh),
        (lambda t: A.GELUFunction.apply(t, "none"), F.gelu),
        (
            lambda t: A.GELUFunction.apply(t, "tanh"),
            lambda t: F.gelu(t, approximate="tanh"),
        ),
        (A.SiLUFunction.apply, F.silu),
        (lambda t: A.ELUFunction.apply(t, 0.8), lambda t: F.elu(t, 0.8)),
    ]
    for ours, theirs in pairs:
        second = []
        for fn in (ours, theirs):
            xx = x.clone().requires_grad_()
            (g,) = torch.autograd.grad(fn(xx).sum(), xx, create_graph=True)
            (gg,) = torch.autograd.grad(g.sum(), xx)
            second.append(gg)
        assert_close(second[0], second[1], ulps=PARITY_ULPS)
