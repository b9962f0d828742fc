"""Hidden checks of the Mish assignment: parity with torch.nn.Mish, and the hand-written backward against
finite differences and torch's gradients.

Each check is a probe (``@probe``: runs in the answer's sandbox, returns what it saw) and a judge (``@check``:
runs in the grader, computes torch's values on the same inputs and compares)."""

import torch
from torch import nn

from companion.coursework import probes
from companion.coursework.checks import check, close, plain_tensor, same_signature
from companion.coursework.probes import probe

TorchMish = nn.Mish  # the reference: trusted side only (not a literal, never sent)
torch_mish = torch.nn.functional.mish
DTYPES = ("float64", "float32")
EXTREMES = [-1000.0, -100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0, 1000.0]
FD_EPS = 1e-6  # the finite-difference step of torch.autograd.gradcheck


@probe
def inputs(dtype, seed):
    g = probes.generator(seed)
    grid = torch.linspace(-12, 12, 241, dtype=dtype)
    return torch.cat([grid, 4 * torch.randn(494, generator=g, dtype=dtype)]).reshape(
        -1, 7
    )


@probe
def output_and_grad(module, x, seed):
    """The module's output on ``x`` and the input gradient for random grad_outputs from ``seed``."""
    x = x.detach().clone().requires_grad_()
    y = module(x)
    w = torch.randn(y.shape, generator=probes.generator(seed + 1), dtype=y.dtype)
    return y, torch.autograd.grad(y, x, w)[0]


@probe
def signature_probe(ns, seed):
    return [
        probes.signature_of(ns["Mish"].__init__),
        ns["Mish"]().inplace,
        ns["Mish"](inplace=True).inplace,
    ]


@check(points=1, probe=signature_probe)
def signature(obs, seed):
    """Mish(inplace=False) with the attribute inplace, like torch.nn.Mish."""
    sig, off, on = obs
    same_signature(
        sig,
        probes.signature_of(TorchMish.__init__),
        "the constructor's signature differs from torch's",
    )
    assert off is False and on is True, "the attribute inplace"


@probe
def forward_probe(ns, seed):
    return [ns["Mish"]()(inputs(getattr(torch, d), seed)) for d in DTYPES]


@check(points=2, probe=forward_probe)
def forward(obs, seed):
    """The output matches torch's in float64 and float32 on [-12, 12] and random inputs."""
    for d, y in zip(DTYPES, obs, strict=True):
        x = inputs(getattr(torch, d), seed)
        # an exp, a log1p, a tanh and a product: a few ε each, relative to the largest value
        close(y, TorchMish()(x), ulps=16, what=f"the output in torch.{d}")


@probe
def backward_probe(ns, seed):
    return [
        output_and_grad(ns["Mish"](), inputs(getattr(torch, d), seed), seed)[1]
        for d in DTYPES
    ]


@check(points=2, probe=backward_probe)
def backward(obs, seed):
    """The input gradient matches torch's in float64 and float32."""
    for d, g in zip(DTYPES, obs, strict=True):
        _, want = output_and_grad(TorchMish(), inputs(getattr(torch, d), seed), seed)
        close(g, want, ulps=32, what=f"the input gradient in torch.{d}")


@probe
def hand_written_probe(ns, seed):
    y = ns["Mish"]()(torch.randn(3, 5, requires_grad=True))
    return [
        type(y.grad_fn).__name__,
        isinstance(y.grad_fn, torch.autograd.function.BackwardCFunction),
    ]


@check(points=1, probe=hand_written_probe)
def hand_written(obs, seed):
    """The module's output comes from the answer's own autograd.Function (a hand-written backward)."""
    name, custom = obs
    assert custom is True, (
        f"the output's grad_fn is {name}: autograd differentiates the forward instead of your backward"
    )


@probe
def gradcheck_probe(ns, seed):
    """On [-6, 6] (float64): the output at x ± FD_EPS·u for random directions u, and the backward's
    vector-Jacobian product for random grad_outputs."""
    x = torch.linspace(-6, 6, 37, dtype=torch.float64) + 0.01
    g = probes.generator(seed)
    out = []
    for _ in range(3):
        u = torch.randn(x.shape, generator=g, dtype=torch.float64)
        w = torch.randn(x.shape, generator=g, dtype=torch.float64)
        m = ns["Mish"]()
        with torch.no_grad():
            plus, minus = m(x + FD_EPS * u), m(x - FD_EPS * u)
        xr = x.clone().requires_grad_()
        (vjp,) = torch.autograd.grad(m(xr), xr, w)
        out.append([plus, minus, vjp])
    return out


@check(points=2, probe=gradcheck_probe)
def gradcheck(obs, seed):
    """Finite differences agree with the backward (float64, on [-6, 6]), as in torch.autograd.gradcheck."""
    x = torch.linspace(-6, 6, 37, dtype=torch.float64) + 0.01
    g = probes.generator(seed)
    assert type(obs) is list and len(obs) == 3, "three observations expected"
    for k, item in enumerate(obs):
        u = torch.randn(x.shape, generator=g, dtype=torch.float64)
        w = torch.randn(x.shape, generator=g, dtype=torch.float64)
        plus, minus, vjp = (plain_tensor(t, "gradcheck") for t in item)
        for t in (plus, minus, vjp):
            assert t.shape == x.shape and t.dtype == x.dtype, (
                "gradcheck: the shape or dtype"
            )
            assert bool(t.isfinite().all()), "gradcheck: NaN or inf"
        numeric = (w * (plus - minus)).sum().item() / (
            2 * FD_EPS
        )  # w·J·u by central differences
        analytic = (vjp * u).sum().item()  # (wᵀJ)·u from the backward
        # gradcheck's own bounds (atol 1e-5, rtol 1e-3), on one random projection of the Jacobian
        assert abs(numeric - analytic) <= 1e-5 + 1e-3 * abs(numeric), (
            f"gradcheck fails: finite differences give {numeric:.6g} along a random direction, "
            f"your backward {analytic:.6g}"
        )
        xr = x.clone().requires_grad_()
        (want,) = torch.autograd.grad(TorchMish()(xr), xr, w)
        close(vjp, want, ulps=32, what="the vector-Jacobian product")


@probe
def extremes_probe(ns, seed):
    return [
        output_and_grad(
            ns["Mish"](), torch.tensor(EXTREMES, dtype=getattr(torch, d)), seed
        )
        for d in DTYPES
    ]


@check(points=1, probe=extremes_probe)
def extremes(obs, seed):
    """Large |x| (up to 1000) in float32 and float64: no NaN or inf, the same values and gradients as torch."""
    for d, (y, g) in zip(DTYPES, obs, strict=True):
        x = torch.tensor(EXTREMES, dtype=getattr(torch, d))
        y_t, g_t = output_and_grad(TorchMish(), x, seed)
        y, g = plain_tensor(y, "the output"), plain_tensor(g, "the gradient")
        assert y.isfinite().all() and g.isfinite().all(), (
            f"NaN or inf for x = {x.tolist()} (torch.{d}): {y.tolist()}"
        )
        close(y, y_t, ulps=16, what=f"the output at large |x| (torch.{d})")
        close(g, g_t, ulps=32, what=f"the gradient at large |x| (torch.{d})")


@probe
def inplace_probe(ns, seed):
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    y = ns["Mish"](inplace=True)(x)
    same = y is x or y.data_ptr() == x.data_ptr()
    x2 = torch.linspace(-3, 3, 13, dtype=torch.float64)
    ns["Mish"]()(x2)
    return [same, x, x2]


@check(points=1, probe=inplace_probe)
def inplace(obs, seed):
    """Mish(inplace=True) overwrites an input that needs no gradient and returns it; the default leaves it alone."""
    same, x, x2 = obs
    grid = torch.linspace(-3, 3, 13, dtype=torch.float64)
    assert same is True, "with inplace=True the result must be written into the input"
    close(x, torch_mish(grid), ulps=16, what="the input after Mish(inplace=True)")
    close(x2, grid, ulps=0, what="the input after Mish() (must not change)")
