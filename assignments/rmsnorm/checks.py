"""Hidden checks of the RMSNorm assignment: parity with torch.nn.RMSNorm, and the hand-written backward
against finite differences and torch's gradients.

Each check is a probe (``@probe``: runs in the answer's sandbox, returns what it saw) and a judge (``@check``:
runs in the grader, computes torch's values on the same inputs and compares)."""

import torch
from torch import nn

from companion.coursework import probes
from companion.coursework.checks import check, close, plain_tensor, same_signature
from companion.coursework.probes import probe

TorchRMSNorm = (
    nn.RMSNorm
)  # the reference: trusted side only (not a literal, never sent)
# (input shape, normalized_shape, eps, elementwise_affine)
CASES = [
    ((4, 6), 6, None, True),
    ((2, 3, 4, 5), (4, 5), None, True),
    ((3, 7), [7], 1e-3, True),
    ((5, 2, 3), (2, 3), 1e-5, False),
    ((6,), 6, None, True),
]
DTYPES = ("float64", "float32")
FD_EPS = 1e-6


@probe
def weight_for(shape, dtype, seed):
    n = [shape] if isinstance(shape, int) else list(shape)
    return torch.rand(n, generator=probes.generator(seed), dtype=dtype) + 0.5


@probe
def make(cls, shape, eps, affine, dtype, seed):
    """A layer of ``cls`` with a weight drawn from ``seed``."""
    m = cls(shape, eps=eps, elementwise_affine=affine, dtype=dtype)
    if affine:
        with torch.no_grad():
            m.weight.copy_(weight_for(shape, dtype, seed))
    return m


@probe
def input_for(shape, dtype, seed):
    return torch.randn(shape, generator=probes.generator(seed + 1), dtype=dtype) * 3


@probe
def grads(m, x_shape, affine, seed):
    x = input_for(x_shape, torch.float64, seed).requires_grad_()
    y = m(x)
    g = torch.randn(y.shape, generator=probes.generator(seed + 2), dtype=torch.float64)
    return list(torch.autograd.grad(y, (x, m.weight) if affine else (x,), g))


@probe
def signature_probe(ns, seed):
    return [
        probes.signature_of(ns["RMSNorm"].__init__),
        repr(ns["RMSNorm"](4).normalized_shape),
    ]


@check(points=1, probe=signature_probe)
def signature(obs, seed):
    """RMSNorm(normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None), like torch's."""
    sig, shape = obs
    same_signature(
        sig,
        probes.signature_of(TorchRMSNorm.__init__),
        "the constructor's signature differs from torch's",
    )
    assert shape == "(4,)", f"normalized_shape should be the tuple (4,), is {shape}"


@probe
def parameters_probe(ns, seed):
    out = []
    for shape, affine in (((3, 4), True), (5, False)):
        m = ns["RMSNorm"](shape, elementwise_affine=affine)
        w = m.weight
        out.append(
            [
                list(m.state_dict()),
                type(w).__name__,
                w.detach() if isinstance(w, torch.Tensor) else w,
                m.eps,
                m.elementwise_affine,
            ]
        )
    return out


@check(points=1, probe=parameters_probe)
def parameters(obs, seed):
    """weight: a Parameter of ones with normalized_shape's shape, None without elementwise_affine; same state_dict keys."""
    for (shape, affine), got in zip((((3, 4), True), (5, False)), obs, strict=True):
        keys, kind, weight, eps, flag = got
        theirs = TorchRMSNorm(shape, elementwise_affine=affine)
        assert keys == list(theirs.state_dict()), (
            f"state_dict keys {keys}, torch has {list(theirs.state_dict())}"
        )
        if affine:
            assert kind == "Parameter", "weight is not an nn.Parameter"
            close(weight, theirs.weight.detach(), ulps=0, what="the initial weight")
        else:
            assert weight is None, (
                "without elementwise_affine, weight must be None (register_parameter)"
            )
        assert eps is None and flag is affine, "the attributes eps / elementwise_affine"


@probe
def forward_probe(ns, seed):
    return [
        make(ns["RMSNorm"], shape, eps, affine, getattr(torch, d), seed)(
            input_for(x_shape, getattr(torch, d), seed)
        )
        for d in DTYPES
        for x_shape, shape, eps, affine in CASES
    ]


@check(points=2, probe=forward_probe)
def forward(obs, seed):
    """The output matches torch's in float64 and float32 over several shapes, eps and elementwise_affine."""
    cases = [(d, *case) for d in DTYPES for case in CASES]
    for (d, x_shape, shape, eps, affine), y in zip(cases, obs, strict=True):
        dtype = getattr(torch, d)
        want = make(TorchRMSNorm, shape, eps, affine, dtype, seed)(
            input_for(x_shape, dtype, seed)
        )
        # a mean over n ≤ 20 elements, a root and a division: a few tens of ε
        close(
            y,
            want,
            ulps=64,
            what=f"the output for input {x_shape}, normalized_shape={shape}, eps={eps}, torch.{d}",
        )


@probe
def backward_probe(ns, seed):
    return [
        grads(
            make(ns["RMSNorm"], shape, eps, affine, torch.float64, seed),
            x_shape,
            affine,
            seed,
        )
        for x_shape, shape, eps, affine in CASES
    ]


@check(points=2, probe=backward_probe)
def backward(obs, seed):
    """The gradients with respect to the input and the weight match torch's (float64)."""
    for (x_shape, shape, eps, affine), got in zip(CASES, obs, strict=True):
        want = grads(
            make(TorchRMSNorm, shape, eps, affine, torch.float64, seed),
            x_shape,
            affine,
            seed,
        )
        where = f"for input {x_shape}, normalized_shape={shape}"
        assert type(got) is list and len(got) == len(want), f"the gradients {where}"
        # a reduction over the row and the batch: tens to a hundred ε
        close(got[0], want[0], ulps=256, what=f"the input gradient {where}")
        if affine:
            close(got[1], want[1], ulps=256, what=f"the weight gradient {where}")


@probe
def hand_written_probe(ns, seed):
    y = ns["RMSNorm"](5)(torch.randn(3, 5, requires_grad=True))
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
    """For each case (float64): the output at (x, w) ± FD_EPS·(u, v) for random directions, and the
    backward's vector-Jacobian products for a random grad_output."""
    out = []
    for k, (x_shape, shape, eps, affine) in enumerate(CASES[:4]):
        m = make(ns["RMSNorm"], shape, eps, affine, torch.float64, seed)
        x = input_for(x_shape, torch.float64, seed)
        g = probes.generator(seed + 10 + k)
        u = torch.randn(x.shape, generator=g, dtype=torch.float64)
        w = torch.randn(x.shape, generator=g, dtype=torch.float64)
        v = (
            torch.randn(m.weight.shape, generator=g, dtype=torch.float64)
            if affine
            else None
        )
        weight = m.weight.detach().clone() if affine else None
        seen = []
        for sign in (1, -1):
            with torch.no_grad():
                if affine:
                    m.weight.copy_(weight + sign * FD_EPS * v)
                seen.append(m(x + sign * FD_EPS * u))
        if affine:
            with torch.no_grad():
                m.weight.copy_(weight)
        xr = x.clone().requires_grad_()
        seen += list(torch.autograd.grad(m(xr), (xr, m.weight) if affine else (xr,), w))
        out.append(seen)
    return out


@check(points=2, probe=gradcheck_probe)
def gradcheck(obs, seed):
    """Finite differences agree with the backward for the input and the weight (float64), as in gradcheck."""
    for k, ((x_shape, shape, eps, affine), got) in enumerate(
        zip(CASES[:4], obs, strict=True)
    ):
        m = make(TorchRMSNorm, shape, eps, affine, torch.float64, seed)
        x = input_for(x_shape, torch.float64, seed)
        g = probes.generator(seed + 10 + k)
        u = torch.randn(x.shape, generator=g, dtype=torch.float64)
        w = torch.randn(x.shape, generator=g, dtype=torch.float64)
        v = (
            torch.randn(m.weight.shape, generator=g, dtype=torch.float64)
            if affine
            else None
        )
        where = f"for input {x_shape}, normalized_shape={shape}"
        assert type(got) is list and len(got) == (4 if affine else 3), (
            f"gradcheck {where}"
        )
        plus, minus, gx, *gw = (plain_tensor(t, f"gradcheck {where}") for t in got)
        for t in (plus, minus, gx):
            assert t.shape == x.shape and bool(t.isfinite().all()), (
                f"gradcheck {where}: shape or NaN"
            )
        numeric = (w * (plus - minus)).sum().item() / (2 * FD_EPS)
        analytic = (gx * u).sum().item()
        if affine:
            assert gw[0].shape == v.shape, (
                f"gradcheck {where}: the weight gradient's shape"
            )
            analytic += (gw[0] * v).sum().item()
        # torch.autograd.gradcheck's bounds of the original check (atol 1e-6, rtol 1e-4), on a random
        # projection of the Jacobian
        assert abs(numeric - analytic) <= 1e-6 + 1e-4 * abs(numeric), (
            f"gradcheck fails {where}: finite differences give {numeric:.6g} along a random "
            f"direction, your backward {analytic:.6g}"
        )


@probe
def state_dict_probe(ns, seed):
    ours = make(ns["RMSNorm"], (3, 4), None, True, torch.float64, seed)
    fresh = ns["RMSNorm"]((3, 4), dtype=torch.float64)
    theirs_sd = {"weight": weight_for((3, 4), torch.float64, seed + 5)}
    fresh.load_state_dict(theirs_sd)
    x = input_for((2, 3, 4), torch.float64, seed)
    sd = ours.state_dict()
    return [fresh(x), ours(x), {k: sd[k] for k in sd}]


@check(points=1, probe=state_dict_probe)
def state_dict(obs, seed):
    """A state_dict moves both ways between yours and torch.nn.RMSNorm, and the outputs then agree."""
    after_load, ours_out, ours_sd = obs
    theirs = make(TorchRMSNorm, (3, 4), None, True, torch.float64, seed + 5)
    x = input_for((2, 3, 4), torch.float64, seed)
    close(
        after_load,
        theirs(x),
        ulps=64,
        what="the output after loading torch's state_dict",
    )
    assert type(ours_sd) is dict and list(ours_sd) == ["weight"], (
        f"your state_dict's keys: {list(ours_sd) if type(ours_sd) is dict else ours_sd}"
    )
    fresh_theirs = TorchRMSNorm((3, 4), dtype=torch.float64)
    fresh_theirs.load_state_dict(
        {"weight": plain_tensor(ours_sd["weight"], "your state_dict's weight")}
    )
    close(
        ours_out,
        fresh_theirs(x),
        ulps=64,
        what="torch's output after loading your state_dict",
    )
