"""Hidden checks of the alpha dropout assignment: torch.nn.AlphaDropout's contract, and the layer's statistics
(fixed seeds, so the grades are reproducible)."""

import math

import torch
from torch import nn

from companion.coursework.checks import check, close, contract, raises_like
from companion.testing import optim_contract as oc

TorchAlphaDropout = (
    nn.AlphaDropout
)  # kept before the grader guards torch's class against the answer
ALPHA = 1.7580993408473766
N = 400_000
PS = (0.1, 0.5, 0.8)


def _a(p):
    return ((1 - p) * (1 + p * ALPHA**2)) ** -0.5


def _run(ns, p, seed=0, n=N):
    torch.manual_seed(seed)
    x = torch.randn(
        n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1)
    )
    layer = ns["AlphaDropout"](p)
    layer.train()
    y = layer(x)
    assert isinstance(y, torch.Tensor) and y.shape == x.shape, (
        "the output must be a tensor of the input's shape"
    )
    return x, y


def _mode(y):
    values, counts = torch.unique(y, return_counts=True)
    return values[counts.argmax()].item(), counts.max().item() / y.numel()


@check(points=1)
def signature(ns):
    """AlphaDropout(p=0.5, inplace=False), its attributes, and torch's ValueError for p outside [0, 1]."""
    contract(
        "the constructor's signature differs from torch's",
        oc.check_signature,
        ns["AlphaDropout"],
        TorchAlphaDropout,
    )
    layer = ns["AlphaDropout"](0.3, inplace=True)
    assert layer.p == 0.3 and layer.inplace is True, "the attributes p and inplace"
    for bad in (1.5, -0.1):
        raises_like(ns["AlphaDropout"], TorchAlphaDropout, bad)


@check(points=1)
def modes(ns):
    """The identity in evaluation mode and for p = 0; zeros for p = 1."""
    x = torch.randn(1000, dtype=torch.float64)
    layer = ns["AlphaDropout"](0.4)
    layer.eval()
    close(layer(x), x, ulps=0, what="the output in evaluation mode")
    close(ns["AlphaDropout"](0.0)(x), x, ulps=0, what="the output for p = 0")
    close(
        ns["AlphaDropout"](1.0)(x).abs(),
        torch.zeros_like(x),
        ulps=0,
        what="the output for p = 1",
    )


@check(points=2)
def moments(ns):
    """In training, standard normal inputs keep mean 0 and variance 1 (within 5 standard errors; p = 0.1, 0.5, 0.8)."""
    for p in PS:
        _, y = _run(ns, p)
        centered = y - y.mean()
        se_mean = y.std().item() / math.sqrt(N)
        se_var = math.sqrt(
            (centered**4).mean().item() - y.var().item() ** 2
        ) / math.sqrt(N)
        assert abs(y.mean().item()) < 5 * se_mean, (
            f"p = {p}: the mean is {y.mean().item():+.5f}, should be 0"
        )
        assert abs(y.var().item() - 1) < 5 * se_var, (
            f"p = {p}: the variance is {y.var().item():.5f}, should be 1"
        )


@check(points=2)
def dropped_fraction(ns):
    """A fraction p of the units (within 5 standard errors) takes one common value: the dropped ones."""
    for p in PS:
        _, y = _run(ns, p)
        _, fraction = _mode(y)
        se = math.sqrt(p * (1 - p) / N)
        assert abs(fraction - p) < 5 * se, (
            f"p = {p}: {fraction:.4f} of the units share one value, expected {p}"
        )


@check(points=2)
def affine(ns):
    """Kept units are a x + b and dropped ones a α' + b, with torch's a and b."""
    for p in PS:
        x, y = _run(ns, p)
        dropped, _ = _mode(y)
        a = _a(p)
        b = a * ALPHA * p
        kept = y != dropped
        # one multiply-add: a few ε
        close(y[kept], a * x[kept] + b, ulps=8, what=f"p = {p}: the kept units")
        close(
            torch.tensor(dropped, dtype=torch.float64),
            torch.tensor(-a * ALPHA + b, dtype=torch.float64),
            ulps=8,
            what=f"p = {p}: the value of the dropped units",
        )


@check(points=1)
def gradient(ns):
    """The gradient is a on the kept units and 0 on the dropped ones."""
    p = 0.3
    torch.manual_seed(0)
    x = torch.randn(10_000, dtype=torch.float64, requires_grad=True)
    y = ns["AlphaDropout"](p)(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    dropped, _ = _mode(y.detach())
    kept = (y.detach() != dropped).to(torch.float64)
    close(g, _a(p) * kept, ulps=4, what="the input gradient")


@check(points=1)
def inplace(ns):
    """With inplace=True the result is written into the input; without, the input is unchanged."""
    torch.manual_seed(0)
    x = torch.randn(1000, dtype=torch.float64)
    original = x.clone()
    y = ns["AlphaDropout"](0.5, inplace=True)(x)
    assert y.data_ptr() == x.data_ptr(), (
        "with inplace=True the result must be written into the input"
    )
    assert not torch.equal(x, original), "with inplace=True the input must change"
    x2 = original.clone()
    ns["AlphaDropout"](0.5)(x2)
    close(
        x2, original, ulps=0, what="the input after AlphaDropout(0.5) (must not change)"
    )
