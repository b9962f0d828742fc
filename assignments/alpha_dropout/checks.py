"""Hidden checks of the alpha dropout assignment: torch.nn.AlphaDropout's contract, and the layer's statistics
(inputs and masks from the run's seed; the statistical bounds are wide enough that a right answer fails
them less than once in a million seeds).

Each check is a probe (``@probe``: runs in the answer's sandbox, returns what it saw) and a judge (``@check``:
runs in the grader, recomputes the inputs and judges the outputs)."""

import math

import torch
from torch import nn

from companion.coursework import probes
from companion.coursework.checks import (
    check,
    close,
    error_of,
    plain_tensor,
    raises_like,
    same_signature,
)
from companion.coursework.probes import probe

TorchAlphaDropout = nn.AlphaDropout  # the reference: trusted side only (never sent)
ALPHA = 1.7580993408473766
N = 400_000
PS = (0.1, 0.5, 0.8)
BAD_P = (1.5, -0.1)


def _a(p):
    return ((1 - p) * (1 + p * ALPHA**2)) ** -0.5


@probe
def input_for(n, seed):
    return torch.randn(n, dtype=torch.float64, generator=probes.generator(seed + 1))


@probe
def run(ns, p, seed, n=N):
    """The layer in training mode on ``input_for(n, seed)``, its mask drawn from ``seed``."""
    torch.manual_seed(seed)
    layer = ns["AlphaDropout"](p)
    layer.train()
    return layer(input_for(n, seed))


def _output(y, n=N) -> torch.Tensor:
    y = plain_tensor(y, "the output")
    assert y.shape == (n,) and y.dtype == torch.float64, (
        "the output must be a tensor of the input's shape and dtype"
    )
    assert bool(y.isfinite().all()), "the output holds NaN or inf"
    return y


def _mode(y):
    values, counts = torch.unique(y, return_counts=True)
    return values[counts.argmax()].item(), counts.max().item() / y.numel()


@probe
def signature_probe(ns, seed):
    layer = ns["AlphaDropout"](0.3, inplace=True)
    return [
        probes.signature_of(ns["AlphaDropout"].__init__),
        layer.p,
        layer.inplace,
        [probes.outcome(ns["AlphaDropout"], bad) for bad in BAD_P],
    ]


@check(points=1, probe=signature_probe)
def signature(obs, seed):
    """AlphaDropout(p=0.5, inplace=False), its attributes, and torch's ValueError for p outside [0, 1]."""
    sig, p, inplace, errors = obs
    same_signature(
        sig,
        probes.signature_of(TorchAlphaDropout.__init__),
        "the constructor's signature differs from torch's",
    )
    assert p == 0.3 and inplace is True, "the attributes p and inplace"
    assert type(errors) is list and len(errors) == len(BAD_P), "the ValueErrors"
    for got, bad in zip(errors, BAD_P):
        raises_like(got, error_of(TorchAlphaDropout, bad), repr(bad))


@probe
def modes_probe(ns, seed):
    x = input_for(1000, seed)
    layer = ns["AlphaDropout"](0.4)
    layer.eval()
    return [layer(x), ns["AlphaDropout"](0.0)(x), ns["AlphaDropout"](1.0)(x).abs()]


@check(points=1, probe=modes_probe)
def modes(obs, seed):
    """The identity in evaluation mode and for p = 0; zeros for p = 1."""
    x = input_for(1000, seed)
    evaluated, p0, p1 = obs
    close(evaluated, x, ulps=0, what="the output in evaluation mode")
    close(p0, x, ulps=0, what="the output for p = 0")
    close(p1, torch.zeros_like(x), ulps=0, what="the output for p = 1")


@probe
def moments_probe(ns, seed):
    return [run(ns, p, seed + k) for k, p in enumerate(PS)]


@check(points=2, probe=moments_probe)
def moments(obs, seed):
    """In training, standard normal inputs keep mean 0 and variance 1 (within 5 standard errors; p = 0.1, 0.5, 0.8)."""
    for p, y in zip(PS, obs, strict=True):
        y = _output(y)
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


@probe
def dropped_fraction_probe(ns, seed):
    return [run(ns, p, seed + 10 + k) for k, p in enumerate(PS)]


@check(points=2, probe=dropped_fraction_probe)
def dropped_fraction(obs, seed):
    """A fraction p of the units (within 5 standard errors) takes one common value: the dropped ones."""
    for p, y in zip(PS, obs, strict=True):
        _, fraction = _mode(_output(y))
        se = math.sqrt(p * (1 - p) / N)
        assert abs(fraction - p) < 5 * se, (
            f"p = {p}: {fraction:.4f} of the units share one value, expected {p}"
        )


@probe
def affine_probe(ns, seed):
    return [run(ns, p, seed + 20 + k) for k, p in enumerate(PS)]


@check(points=2, probe=affine_probe)
def affine(obs, seed):
    """Kept units are a x + b and dropped ones a α' + b, with torch's a and b."""
    for k, (p, y) in enumerate(zip(PS, obs, strict=True)):
        y = _output(y)
        x = input_for(N, seed + 20 + k)
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


@probe
def gradient_probe(ns, seed):
    torch.manual_seed(seed)
    x = input_for(10_000, seed).requires_grad_()
    y = ns["AlphaDropout"](0.3)(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    return [y.detach(), g]


@check(points=1, probe=gradient_probe)
def gradient(obs, seed):
    """The gradient is a on the kept units and 0 on the dropped ones."""
    y, g = obs
    y = _output(y, 10_000)
    dropped, _ = _mode(y)
    kept = (y != dropped).to(torch.float64)
    close(g, _a(0.3) * kept, ulps=4, what="the input gradient")


@probe
def inplace_probe(ns, seed):
    torch.manual_seed(seed)
    x = input_for(1000, seed)
    y = ns["AlphaDropout"](0.5, inplace=True)(x)
    same = y.data_ptr() == x.data_ptr()
    x2 = input_for(1000, seed)
    ns["AlphaDropout"](0.5)(x2)
    return [same, x, x2]


@check(points=1, probe=inplace_probe)
def inplace(obs, seed):
    """With inplace=True the result is written into the input; without, the input is unchanged."""
    same, x, x2 = obs
    original = input_for(1000, seed)
    assert same is True, "with inplace=True the result must be written into the input"
    x = plain_tensor(x, "the input after AlphaDropout(0.5, inplace=True)")
    assert x.shape == original.shape and not torch.equal(x, original), (
        "with inplace=True the input must change"
    )
    close(
        x2, original, ulps=0, what="the input after AlphaDropout(0.5) (must not change)"
    )
