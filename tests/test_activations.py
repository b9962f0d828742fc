"""companion.nn activations against torch.nn: one parity table over constructor arguments and input
shapes (float64: output, input gradient, parameter gradients), kinks and extreme inputs, gradcheck and
gradgradcheck of every hand-written backward, the module contract, and Maxout against its definition."""

import copy
import inspect
import math
import warnings

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
GRADCHECK = dict(eps=1e-6, atol=1e-7, rtol=1e-5)  # finite differences of float64 functions

# (name, constructor arguments): every module with each of its options
MODULE_CASES = [
    ("Sigmoid", {}), ("Tanh", {}),
    ("ReLU", {}), ("ReLU", dict(inplace=True)),
    ("LeakyReLU", {}), ("LeakyReLU", dict(negative_slope=0.2)), ("LeakyReLU", dict(negative_slope=0.0)),
    ("LeakyReLU", dict(negative_slope=-0.3)), ("LeakyReLU", dict(negative_slope=1.7)),
    ("LeakyReLU", dict(negative_slope=0.1, inplace=True)),
    ("PReLU", {}), ("PReLU", dict(init=0.1)), ("PReLU", dict(num_parameters=3)),
    ("PReLU", dict(num_parameters=3, init=-0.5)),
    ("ELU", {}), ("ELU", dict(alpha=0.5)), ("ELU", dict(alpha=2.0)), ("ELU", dict(alpha=0.0)),
    ("ELU", dict(alpha=1.3, inplace=True)),
    ("GELU", {}), ("GELU", dict(approximate="tanh")),
    ("SiLU", {}), ("SiLU", dict(inplace=True)),
    ("Softmax", dict(dim=0)), ("Softmax", dict(dim=1)), ("Softmax", dict(dim=-1)),
    ("LogSoftmax", dict(dim=0)), ("LogSoftmax", dict(dim=1)), ("LogSoftmax", dict(dim=-1)),
]
SHAPES = [(7, 3), (2, 3, 5), (4, 3, 2, 2), (1, 3), (2, 3, 1, 2, 2)]
ELEMENTWISE_SHAPES = [(), (9,)]  # shapes that also work for element-wise modules (not PReLU(3) / dim=1)


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


@pytest.mark.parametrize("case,shape", PARITY, ids=[f"{_ids(c)}-{s}" for c, s in PARITY])
def test_parity_with_torch(case, shape):
    """Output, input gradient and parameter gradients within PARITY_ULPS of torch's, in float64."""
    ours, theirs = _pair(*case)
    assert_modules_close(ours, theirs, _input(shape), ulps=PARITY_ULPS)


KINKS = torch.tensor([0.0, -0.0, 1e-300, -1e-300, 1e-8, -1e-8, 2.0, -2.0], dtype=torch.float64)


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
    expected = {"ReLU": 0.0, "LeakyReLU": 0.2, "ELU": 0.7, "PReLU": 0.3, "GELU": 0.5, "SiLU": 0.5}
    modules = {"ReLU": L.ReLU(), "LeakyReLU": L.LeakyReLU(0.2), "ELU": L.ELU(0.7),
               "PReLU": L.PReLU(init=0.3, dtype=torch.float64), "GELU": L.GELU(), "SiLU": L.SiLU()}
    for name, module in modules.items():
        (g,) = torch.autograd.grad(module(x).sum(), x)
        assert g.item() == expected[name], name  # exact: at 0 each derivative is one correctly rounded product


EXTREME = torch.tensor([[-1000.0, 1000.0, 0.0, 1.0], [1000.0, 999.0, -1000.0, 500.0],
                        [-1000.0, -1000.0, -999.0, -1000.0]], dtype=torch.float64)


@pytest.mark.parametrize("case", [c for c in MODULE_CASES if c[1].get("num_parameters", 1) == 1], ids=_ids)
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
    assert torch.equal(L.Softmax(dim=0)(x), torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    log = L.LogSoftmax(dim=0)(x)
    assert torch.isfinite(log).all() and abs(log[2].item() - (-2000.0 - math.log(2.0))) < 1e-12


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


@pytest.mark.parametrize("channels,shape", [(1, (5, 4)), (3, (5, 3)), (3, (2, 3, 4)), (2, (2, 2, 3, 3))], ids=str)
def test_prelu_gradcheck_and_gradgradcheck(channels, shape):
    """PReLU's backward for the input and the slopes, first and second order (same tolerances)."""
    x = _away_from_kinks(shape, seed=2)
    w = torch.linspace(-0.5, 0.7, channels, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(A.PReLUFunction.apply, (x, w), **GRADCHECK)
    assert torch.autograd.gradgradcheck(A.PReLUFunction.apply, (x, w), **GRADCHECK)


def test_second_derivatives_match_torch():
    """d²y/dx² through our backward equals torch's double backward within PARITY_ULPS."""
    x = _input((50,), scale=2.0, seed=3)
    pairs = [(A.SigmoidFunction.apply, torch.sigmoid), (A.TanhFunction.apply, torch.tanh),
             (lambda t: A.GELUFunction.apply(t, "none"), F.gelu),
             (lambda t: A.GELUFunction.apply(t, "tanh"), lambda t: F.gelu(t, approximate="tanh")),
             (A.SiLUFunction.apply, F.silu), (lambda t: A.ELUFunction.apply(t, 0.8), lambda t: F.elu(t, 0.8))]
    for ours, theirs in pairs:
        second = []
        for fn in (ours, theirs):
            xx = x.clone().requires_grad_()
            (g,) = torch.autograd.grad(fn(xx).sum(), xx, create_graph=True)
            (gg,) = torch.autograd.grad(g.sum(), xx)
            second.append(gg)
        assert_close(second[0], second[1], ulps=PARITY_ULPS)


# -- module contract -------------------------------------------------------------------------------------

NAMES = ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "PReLU", "ELU", "GELU", "SiLU", "Softmax", "LogSoftmax"]


@pytest.mark.parametrize("name", NAMES)
def test_signature(name):
    """The same constructor parameters (names, kinds, defaults) as torch's class."""
    ours, theirs = inspect.signature(getattr(L, name).__init__), inspect.signature(getattr(nn, name).__init__)
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]


@pytest.mark.parametrize("case", MODULE_CASES, ids=_ids)
def test_repr_and_attributes(case):
    name, kwargs = case
    ours, theirs = getattr(L, name)(**kwargs), getattr(nn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    for attr in getattr(nn, name).__dict__.get("__constants__", []):
        assert getattr(ours, attr) == getattr(theirs, attr)


@pytest.mark.parametrize("case", [c for c in MODULE_CASES if c[1].get("inplace")], ids=_ids)
def test_inplace_overwrites_the_input(case):
    """inplace=True returns the input tensor itself holding torch's result, and the gradient through it
    equals torch's (both within 1e-13)."""
    name, kwargs = case
    ours, theirs = getattr(L, name)(**kwargs), getattr(nn, name)(**kwargs)
    base = _input((4, 5), seed=4).requires_grad_()
    results = []
    for module in (ours, theirs):
        x = base * 1.0  # a non-leaf copy: in-place on a leaf that requires grad is an error
        out = module(x)
        assert out is x
        (g,) = torch.autograd.grad((out * torch.arange(20.0, dtype=torch.float64).reshape(4, 5)).sum(), base)
        results.append((out.detach(), g))
    assert_close(results[0][0], results[1][0], ulps=PARITY_ULPS)
    assert_close(results[0][1], results[1][1], ulps=PARITY_ULPS)


@pytest.mark.parametrize("name", ["ReLU", "LeakyReLU", "ELU", "SiLU"])
def test_inplace_on_a_leaf_is_refused_like_torch(name):
    leaf = torch.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        getattr(nn, name)(inplace=True)(leaf)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        getattr(L, name)(inplace=True)(leaf)


def test_gelu_rejects_an_unknown_approximation_like_torch():
    x = torch.randn(3)
    with pytest.raises(RuntimeError) as theirs:
        nn.GELU(approximate="erf")(x)
    with pytest.raises(RuntimeError) as ours:
        L.GELU(approximate="erf")(x)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("name", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 3, 4), (2, 3, 4, 5)], ids=str)
def test_implicit_dim_warns_and_chooses_like_torch(name, shape):
    """dim=None: the same deprecation warning and the same implicit dimension (a wrong dimension is off by O(1))."""
    x = _input(shape, seed=5)
    outputs, messages = [], []
    for module in (getattr(L, name)(), getattr(nn, name)()):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outputs.append(module(x))
        messages.append([str(w.message) for w in caught])
    assert messages[0] == messages[1] and len(messages[0]) == 1
    assert_close(outputs[0], outputs[1], ulps=PARITY_ULPS)


# -- PReLU: parameters and state_dict ------------------------------------------------------------------


def test_prelu_parameter_and_state_dict_interchange():
    """Parameter ``weight`` of shape (num_parameters,); state_dicts load both ways, after which the
    two agree within PARITY_ULPS."""
    ours, theirs = L.PReLU(3, init=0.1).double(), nn.PReLU(3, init=0.1).double()
    assert [n for n, _ in ours.named_parameters()] == ["weight"] and ours.weight.shape == (3,)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([0.3, -0.2, 0.05]))
    ours.load_state_dict(theirs.state_dict())
    x = _input((4, 3, 5), seed=6)
    assert_modules_close(ours, theirs, x, ulps=PARITY_ULPS)
    with torch.no_grad():
        ours.weight.copy_(torch.tensor([1.5, 0.0, -1.0]))
    fresh = nn.PReLU(3).double()
    fresh.load_state_dict(copy.deepcopy(ours.state_dict()))
    assert_modules_close(ours, fresh, x, ulps=PARITY_ULPS)


def test_prelu_learns_with_an_optimizer():
    """One SGD step moves the slope as torch's PReLU does (within PARITY_ULPS: the slope's gradient is a sum)."""
    ours, theirs = L.PReLU(2).double(), nn.PReLU(2).double()
    x = _input((8, 2), seed=7)
    for module in (ours, theirs):
        opt = torch.optim.SGD(module.parameters(), lr=0.1)
        (module(x) ** 2).sum().backward()
        opt.step()
    assert_close(ours.weight, theirs.weight, ulps=PARITY_ULPS)


def test_prelu_factory_kwargs_and_reset():
    m = L.PReLU(4, init=0.3, dtype=torch.float64, device="cpu")
    assert m.weight.dtype == torch.float64 and torch.equal(m.weight, torch.full((4,), 0.3, dtype=torch.float64))
    with torch.no_grad():
        m.weight.zero_()
    m.reset_parameters()
    assert torch.equal(m.weight, torch.full((4,), 0.3, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(4,), (2, 5), (2, 4, 3)], ids=str)
def test_prelu_channel_mismatch_is_refused_like_torch(shape):
    x = torch.randn(shape)
    with pytest.raises(RuntimeError) as theirs:
        nn.PReLU(3)(x)
    with pytest.raises(RuntimeError) as ours:
        L.PReLU(3)(x)
    assert str(ours.value) == str(theirs.value)


# -- Maxout: no torch class; checked against its definition ------------------------------------------------


class MaxoutByDefinition(nn.Module):
    """h_u(x) = max_j (W_{uk+j} x + b_{uk+j}), written with torch's own linear and max (autograd's backward)."""

    def __init__(self, maxout: L.Maxout):
        super().__init__()
        self.k = maxout.pieces
        self.weight = nn.Parameter(maxout.weight.detach().clone())
        self.bias = None if maxout.bias is None else nn.Parameter(maxout.bias.detach().clone())

    def forward(self, x):
        pieces = [F.linear(x, self.weight[j :: self.k], None if self.bias is None else self.bias[j :: self.k])
                  for j in range(self.k)]
        return torch.stack(pieces, dim=-1).amax(dim=-1)


MAXOUT_CASES = [(5, 3, 2, True), (5, 3, 1, True), (4, 6, 3, True), (7, 2, 4, False), (1, 1, 5, True)]


@pytest.mark.parametrize("shape", [(10,), (6, 10), (2, 3, 10)], ids=str)
@pytest.mark.parametrize("in_f,out_f,k,bias", MAXOUT_CASES, ids=str)
def test_maxout_against_its_definition(in_f, out_f, k, bias, shape):
    """Outputs and gradients (input, weight, bias) within PARITY_ULPS of the max over k explicit linear maps."""
    torch.manual_seed(0)
    ours = L.Maxout(in_f, out_f, k, bias=bias).double()
    reference = MaxoutByDefinition(ours)
    x = _input(shape[:-1] + (in_f,), seed=8)
    assert_modules_close(ours, reference, x, ulps=PARITY_ULPS)
    assert ours(x).shape == shape[:-1] + (out_f,)


def test_maxout_represents_relu_and_abs():
    """With pieces (x, 0) maxout is ReLU; with (x, −x) it is |x| (exactly)."""
    m = L.Maxout(1, 2, pieces=2).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0], [0.0], [1.0], [-1.0]]))
        m.bias.zero_()
    x = torch.linspace(-3, 3, 13, dtype=torch.float64).unsqueeze(1)
    out = m(x)
    assert torch.equal(out[:, 0], x[:, 0].clamp(min=0)) and torch.equal(out[:, 1], x[:, 0].abs())


def test_maxout_default_init_like_linear():
    """Weights and bias inside ±1/√in_features, like nn.Linear's default (bounds reached within 10 %)."""
    torch.manual_seed(0)
    m = L.Maxout(100, 50, pieces=3)
    bound = 1 / 100**0.5
    assert m.weight.shape == (150, 100) and m.bias.shape == (150,)
    assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound
    assert m.bias.abs().max() <= bound
    assert repr(m) == "Maxout(in_features=100, out_features=50, pieces=3, bias=True)"


@pytest.mark.parametrize("pieces", [0, -1, 1.5, True])
def test_maxout_rejects_bad_pieces(pieces):
    with pytest.raises(ValueError, match="pieces must be a positive integer"):
        L.Maxout(3, 2, pieces)


# -- CUDA ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", MODULE_CASES, ids=_ids)
def test_cuda(case):
    """On CUDA in float32, outputs and gradients within 128 ε(float32)·scale of torch's (GPU kernels round
    transcendental functions differently)."""
    ours, theirs = _pair(*case, dtype=torch.float32, device="cuda")
    assert_modules_close(ours, theirs, _input((4, 3, 5), dtype=torch.float32, device="cuda"), ulps=128)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_maxout_cuda():
    torch.manual_seed(0)
    ours = L.Maxout(5, 3, 2).cuda()
    assert_modules_close(ours, MaxoutByDefinition(ours), torch.randn(6, 5, device="cuda"), ulps=128)
