"""Hidden checks of the Mish assignment: parity with torch.nn.Mish, gradcheck of the hand-written backward."""

import torch
from torch import nn
from torch.autograd.gradcheck import GradcheckError

from companion.coursework.checks import check, close, contract
from companion.testing import optim_contract as oc

TorchMish = nn.Mish  # kept before the grader guards torch's class against the answer
torch_mish = torch.nn.functional.mish


def _inputs(dtype):
    g = torch.Generator().manual_seed(0)
    grid = torch.linspace(-12, 12, 241, dtype=dtype)
    return torch.cat([grid, 4 * torch.randn(494, generator=g, dtype=dtype)]).reshape(
        -1, 7
    )


def _grads(module, x, seed=1):
    x = x.detach().clone().requires_grad_()
    y = module(x)
    w = torch.randn(
        y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype
    )
    return y, torch.autograd.grad(y, x, w)[0]


@check(points=1)
def signature(ns):
    """Mish(inplace=False) with the attribute inplace, like torch.nn.Mish."""
    contract(
        "the constructor's signature differs from torch's",
        oc.check_signature,
        ns["Mish"],
        TorchMish,
    )
    assert ns["Mish"]().inplace is False and ns["Mish"](inplace=True).inplace is True, (
        "the attribute inplace"
    )


@check(points=2)
def forward(ns):
    """The output matches torch's in float64 and float32 on [-12, 12] and random inputs."""
    for dtype in (torch.float64, torch.float32):
        x = _inputs(dtype)
        # an exp, a log1p, a tanh and a product: a few ε each, relative to the largest value
        close(ns["Mish"]()(x), TorchMish()(x), ulps=16, what=f"the output in {dtype}")


@check(points=2)
def backward(ns):
    """The input gradient matches torch's in float64 and float32."""
    for dtype in (torch.float64, torch.float32):
        x = _inputs(dtype)
        _, g_ours = _grads(ns["Mish"](), x)
        _, g_theirs = _grads(TorchMish(), x)
        close(g_ours, g_theirs, ulps=32, what=f"the input gradient in {dtype}")


@check(points=1)
def hand_written(ns):
    """The module's output comes from the answer's own autograd.Function (a hand-written backward)."""
    y = ns["Mish"]()(torch.randn(3, 5, requires_grad=True))
    assert isinstance(y.grad_fn, torch.autograd.function.BackwardCFunction), (
        f"the output's grad_fn is {type(y.grad_fn).__name__}: autograd differentiates the forward instead of your backward"
    )


@check(points=2)
def gradcheck(ns):
    """torch.autograd.gradcheck (finite differences, float64) passes on [-6, 6]."""
    x = (torch.linspace(-6, 6, 37, dtype=torch.float64) + 0.01).requires_grad_()
    try:
        torch.autograd.gradcheck(ns["Mish"](), (x,))
    except GradcheckError as exc:
        raise AssertionError(
            f"gradcheck fails: {str(exc).strip().splitlines()[0]}"
        ) from None


@check(points=1)
def extremes(ns):
    """Large |x| (up to 1000) in float32 and float64: no NaN or inf, the same values and gradients as torch."""
    for dtype in (torch.float64, torch.float32):
        x = torch.tensor(
            [-1000.0, -100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0, 1000.0], dtype=dtype
        )
        y, g = _grads(ns["Mish"](), x)
        y_t, g_t = _grads(TorchMish(), x)
        assert y.isfinite().all() and g.isfinite().all(), (
            f"NaN or inf for x = {x.tolist()} ({dtype}): {y.tolist()}"
        )
        close(y, y_t, ulps=16, what=f"the output at large |x| ({dtype})")
        close(g, g_t, ulps=32, what=f"the gradient at large |x| ({dtype})")


@check(points=1)
def inplace(ns):
    """Mish(inplace=True) overwrites an input that needs no gradient and returns it; the default leaves it alone."""
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    expected = torch_mish(x)
    y = ns["Mish"](inplace=True)(x)
    assert y is x or y.data_ptr() == x.data_ptr(), (
        "with inplace=True the result must be written into the input"
    )
    close(x, expected, ulps=16, what="the input after Mish(inplace=True)")
    x2 = torch.linspace(-3, 3, 13, dtype=torch.float64)
    ns["Mish"]()(x2)
    close(
        x2,
        torch.linspace(-3, 3, 13, dtype=torch.float64),
        ulps=0,
        what="the input after Mish() (must not change)",
    )
