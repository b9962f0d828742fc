"""Hidden checks of the RMSNorm assignment: parity with torch.nn.RMSNorm, gradcheck of the hand-written backward."""

import torch
from torch import nn
from torch.autograd.gradcheck import GradcheckError

from companion.coursework.checks import check, close, contract
from companion.testing import optim_contract as oc

TorchRMSNorm = (
    nn.RMSNorm
)  # kept before the grader guards torch's class against the answer
F64 = torch.float64
# (input shape, normalized_shape, eps, elementwise_affine)
CASES = [
    ((4, 6), 6, None, True),
    ((2, 3, 4, 5), (4, 5), None, True),
    ((3, 7), [7], 1e-3, True),
    ((5, 2, 3), (2, 3), 1e-5, False),
    ((6,), 6, None, True),
]


def _pair(ns, shape, eps, affine, dtype=F64, seed=0):
    ours = ns["RMSNorm"](shape, eps=eps, elementwise_affine=affine, dtype=dtype)
    theirs = TorchRMSNorm(shape, eps=eps, elementwise_affine=affine, dtype=dtype)
    if affine:
        with torch.no_grad():
            w = (
                torch.rand(
                    theirs.weight.shape,
                    generator=torch.Generator().manual_seed(seed),
                    dtype=dtype,
                )
                + 0.5
            )
            theirs.weight.copy_(w)
            ours.weight.copy_(w)
    return ours, theirs


def _input(shape, dtype=F64, seed=1):
    return (
        torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        * 3
    )


@check(points=1)
def signature(ns):
    """RMSNorm(normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None), like torch's."""
    contract(
        "the constructor's signature differs from torch's",
        oc.check_signature,
        ns["RMSNorm"],
        TorchRMSNorm,
    )
    m = ns["RMSNorm"](4)
    assert m.normalized_shape == (4,), (
        f"normalized_shape should be the tuple (4,), is {m.normalized_shape!r}"
    )


@check(points=1)
def parameters(ns):
    """weight: a Parameter of ones with normalized_shape's shape, None without elementwise_affine; same state_dict keys."""
    for shape, affine in (((3, 4), True), (5, False)):
        ours, theirs = (
            ns["RMSNorm"](shape, elementwise_affine=affine),
            TorchRMSNorm(shape, elementwise_affine=affine),
        )
        assert list(ours.state_dict()) == list(theirs.state_dict()), (
            f"state_dict keys {list(ours.state_dict())}, torch has {list(theirs.state_dict())}"
        )
        if affine:
            assert isinstance(ours.weight, nn.Parameter), (
                "weight is not an nn.Parameter"
            )
            close(
                ours.weight.detach(),
                theirs.weight.detach(),
                ulps=0,
                what="the initial weight",
            )
        else:
            assert ours.weight is None, (
                "without elementwise_affine, weight must be None (register_parameter)"
            )
        assert ours.eps is None and ours.elementwise_affine is affine, (
            "the attributes eps / elementwise_affine"
        )


@check(points=2)
def forward(ns):
    """The output matches torch's in float64 and float32 over several shapes, eps and elementwise_affine."""
    for dtype in (F64, torch.float32):
        for x_shape, shape, eps, affine in CASES:
            ours, theirs = _pair(ns, shape, eps, affine, dtype)
            x = _input(x_shape, dtype)
            # a mean over n ≤ 20 elements, a root and a division: a few tens of ε
            close(
                ours(x),
                theirs(x),
                ulps=64,
                what=f"the output for input {x_shape}, normalized_shape={shape}, eps={eps}, {dtype}",
            )


@check(points=2)
def backward(ns):
    """The gradients with respect to the input and the weight match torch's (float64)."""
    for x_shape, shape, eps, affine in CASES:
        ours, theirs = _pair(ns, shape, eps, affine)
        grads = []
        for m in (ours, theirs):
            x = _input(x_shape).requires_grad_()
            y = m(x)
            g = torch.randn(
                y.shape, generator=torch.Generator().manual_seed(2), dtype=F64
            )
            wrt = (x, m.weight) if affine else (x,)
            grads.append(torch.autograd.grad(y, wrt, g))
        where = f"for input {x_shape}, normalized_shape={shape}"
        # a reduction over the row and the batch: tens to a hundred ε
        close(grads[0][0], grads[1][0], ulps=256, what=f"the input gradient {where}")
        if affine:
            close(
                grads[0][1], grads[1][1], ulps=256, what=f"the weight gradient {where}"
            )


@check(points=1)
def hand_written(ns):
    """The module's output comes from the answer's own autograd.Function (a hand-written backward)."""
    y = ns["RMSNorm"](5)(torch.randn(3, 5, requires_grad=True))
    assert isinstance(y.grad_fn, torch.autograd.function.BackwardCFunction), (
        f"the output's grad_fn is {type(y.grad_fn).__name__}: autograd differentiates the forward instead of your backward"
    )


@check(points=2)
def gradcheck(ns):
    """torch.autograd.gradcheck (finite differences, float64) passes for the input and the weight."""
    for x_shape, shape, eps, affine in CASES[:4]:
        m, _ = _pair(ns, shape, eps, affine)
        x = _input(x_shape).requires_grad_()
        if affine:
            w = m.weight.detach().clone().requires_grad_()
            f = lambda x, w: torch.func.functional_call(m, {"weight": w}, (x,))
            inputs = (x, w)
        else:
            f, inputs = m, (x,)
        try:
            torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
        except GradcheckError as exc:
            first = str(exc).strip().splitlines()[0]
            raise AssertionError(
                f"gradcheck fails for input {x_shape}, normalized_shape={shape}: {first}"
            ) from None


@check(points=1)
def state_dict(ns):
    """A state_dict moves both ways between yours and torch.nn.RMSNorm, and the outputs then agree."""
    ours, theirs = _pair(ns, (3, 4), None, True)
    fresh_ours, fresh_theirs = (
        ns["RMSNorm"]((3, 4), dtype=F64),
        TorchRMSNorm((3, 4), dtype=F64),
    )
    fresh_ours.load_state_dict(theirs.state_dict())
    fresh_theirs.load_state_dict(ours.state_dict())
    x = _input((2, 3, 4))
    close(
        fresh_ours(x),
        theirs(x),
        ulps=64,
        what="the output after loading torch's state_dict",
    )
    close(
        fresh_theirs(x),
        ours(x),
        ulps=64,
        what="torch's output after loading your state_dict",
    )
