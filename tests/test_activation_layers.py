"""companion.nn activation layers: their contract as torch modules (signatures, in-place use, implicit
softmax dimension, PReLU's parameter and state_dict) and Maxout against its definition."""

import copy
import inspect
import warnings
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from companion.nn import activation_layers as L
from companion.testing.parity import assert_modules_close
from companion.testing.tolerances import assert_close

from test_activations import MODULE_CASES, PARITY_ULPS, _ids, _input, _pair


# -- module contract -------------------------------------------------------------------------------------

NAMES = [
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Softmax",
    "LogSoftmax",
]


@pytest.mark.parametrize("name", NAMES)
def test_signature(name):
    """The same constructor parameters (names, kinds, defaults) as torch's class."""
    ours, theirs = (
        inspect.signature(getattr(L, name).__init__),
        inspect.signature(getattr(nn, name).__init__),
    )
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


@pytest.mark.parametrize(
    "case", [c for c in MODULE_CASES if c[1].get("inplace")], ids=_ids
)
def test_inplace_overwrites_the_input(case):
    """inplace=True returns the input tensor itself holding torch's result, and the gradient through it
    equals torch's (both within 1e-13)."""
    name, kwargs = case
    ours, theirs = getattr(L, name)(**kwargs), getattr(nn, name)(**kwargs)
    base = _input((4, 5), seed=4).requires_grad_()
    results = []
    for module in (ours, theirs):
        x = (
            base * 1.0
        )  # a non-leaf copy: in-place on a leaf that requires grad is an error
        out = module(x)
        assert out is x
        (g,) = torch.autograd.grad(
            (out * torch.arange(20.0, dtype=torch.float64).reshape(4, 5)).sum(), base
        )
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
    assert [n for n, _ in ours.named_parameters()] == [
        "weight"
    ] and ours.weight.shape == (3,)
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
    assert m.weight.dtype == torch.float64 and torch.equal(
        m.weight, torch.full((4,), 0.3, dtype=torch.float64)
    )
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
        self.bias = (
            None if maxout.bias is None else nn.Parameter(maxout.bias.detach().clone())
        )

    def forward(self, x):
        pieces = [
            F.linear(
                x,
                self.weight[j :: self.k],
                None if self.bias is None else self.bias[j :: self.k],
            )
            for j in range(self.k)
        ]
        return torch.stack(pieces, dim=-1).amax(dim=-1)


MAXOUT_CASES = [
    (5, 3, 2, True),
    (5, 3, 1, True),
    (4, 6, 3, True),
    (7, 2, 4, False),
    (1, 1, 5, True),
]


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
    assert torch.equal(out[:, 0], x[:, 0].clamp(min=0)) and torch.equal(
        out[:, 1], x[:, 0].abs()
    )


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
    assert_modules_close(
        ours, theirs, _input((4, 3, 5), dtype=torch.float32, device="cuda"), ulps=128
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_maxout_cuda():
    torch.manual_seed(0)
    ours = L.Maxout(5, 3, 2).cuda()
    assert_modules_close(
        ours, MaxoutByDefinition(ours), torch.randn(6, 5, device="cuda"), ulps=128
    )
