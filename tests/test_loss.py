"""companion.nn losses against torch.nn in float64: a parity table over shapes and options (the loss,
the input gradient, the gradient with respect to a probability target), torch's edge cases (every
target ignored, empty batch, reduction 'none', extreme logits), gradcheck and gradgradcheck of the
hand-written cross-entropy backward, and the module contract. Error cases: tests/test_loss_errors.py."""

import itertools
import warnings

import pytest
import torch
from torch import nn

from companion.nn import loss as L
from companion.testing.parity import compare_modules
from companion.testing.tolerances import assert_close

# Tolerances (units of ε·scale, scale = the largest |expected|). A per-row loss is a log-sum-exp over
# C ≤ 7 classes plus a few products: a handful of roundings, written in another order than torch's
# kernel -> ROW = 16. A reduced loss adds up to ~150 such rows (error grows with the count, relative to
# a sum of positive terms) -> REDUCED = 256. Gradients are g·(p − a), softmax minus target times the
# incoming weighting g: a few roundings, but p − a cancels, so the error is relative to |g|·max(p, a),
# which can be several times the largest gradient entry itself (33 ε seen) -> GRAD = 128.
ROW, REDUCED, GRAD = 16, 256, 128
GRADCHECK = dict(
    eps=1e-6, atol=1e-8, rtol=1e-6
)  # central differences of float64 smooth functions


def _rand(*shape, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(shape, generator=g, dtype=torch.float64)


def _parity(ours, theirs, input, target, what, ulps_out, scale=None):
    """Loss, ∂/∂input and (for a floating target) ∂/∂target of ours and torch's, under one random weighting
    (the loss compared relative to ``scale`` when given, else to its own largest value)."""
    results = []
    for module in (ours, theirs):
        x = input.detach().clone().requires_grad_()
        t = target.detach().clone().requires_grad_(target.is_floating_point())
        out = module(x, t)
        r = _rand(*out.shape, seed=7)
        grads = torch.autograd.grad(
            (out * r).sum(), [x, t] if t.requires_grad else [x], allow_unused=True
        )
        results.append((out.detach(), grads))
    (oa, ga), (ob, gb) = results
    assert_close(oa, ob, ulps=ulps_out, scale=scale, what=f"{what}: loss")
    for a, b, name in zip(ga, gb, ("input grad", "target grad")):
        # the gradient of a mean is 1/denominator times the per-row one, so its scale is that of b
        assert_close(a, b, ulps=GRAD, what=f"{what}: {name}")


# -- cross-entropy: class-index targets --------------------------------------------------------------

C = 5
CE_SHAPES = [(C,), (7, C), (4, C, 3), (2, C, 3, 2), (1, C, 1)]
CE_OPTIONS = [
    dict(weight=w, ignore_index=ii, reduction=red, label_smoothing=ls)
    for w, ii, red, ls in itertools.product(
        (None, "rand"), (-100, 1), ("mean", "sum", "none"), (0.0, 0.1, 1.0)
    )
]


def _ids(kw):
    return "-".join(f"{k}={v}" for k, v in kw.items())


def _make(cls, kw):
    kw = dict(kw)
    if isinstance(kw.get("weight"), str):
        kw["weight"] = (
            torch.rand(
                C, generator=torch.Generator().manual_seed(3), dtype=torch.float64
            )
            + 0.1
        )
    return cls(**kw), getattr(nn, cls.__name__)(**kw)


def _class_target(shape, seed=1, ignore=None):
    """Class indices for an input of ``shape``; every third position set to ``ignore`` (if given)."""
    tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    y = torch.randint(C, tshape, generator=torch.Generator().manual_seed(seed))
    if ignore is not None and y.dim():
        y.view(-1)[::3] = ignore
    return y


@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("kw", CE_OPTIONS, ids=_ids)
def test_cross_entropy_class_index(shape, kw):
    ours, theirs = _make(L.CrossEntropyLoss, kw)
    y = _class_target(shape, ignore=kw["ignore_index"])
    ulps = ROW if kw["reduction"] == "none" else REDUCED
    _parity(ours, theirs, _rand(*shape), y, f"CE {shape} {kw}", ulps)


@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize(
    "kw", [k for k in CE_OPTIONS if k["ignore_index"] == -100], ids=_ids
)
def test_cross_entropy_probabilities(shape, kw):
    """Probability targets (any non-negative rows summing to 1), gradients for the target too."""
    ours, theirs = _make(L.CrossEntropyLoss, kw)
    t = torch.softmax(_rand(*shape, seed=2), dim=0 if len(shape) == 1 else 1)
    ulps = ROW if kw["reduction"] == "none" else REDUCED
    _parity(ours, theirs, _rand(*shape), t, f"CE-prob {shape} {kw}", ulps)


def test_cross_entropy_negative_smoothing_is_none_and_float32_target():
    x, y = _rand(6, C), _class_target((6, C))
    assert_close(
        L.CrossEntropyLoss(label_smoothing=-0.1)(x, y),
        nn.CrossEntropyLoss(label_smoothing=-0.1)(x, y),
        ulps=REDUCED,
        what="negative smoothing",
    )
    t = torch.softmax(
        _rand(6, C, seed=4), 1
    ).float()  # a float32 target with a float64 input: torch casts
    assert_close(
        L.CrossEntropyLoss()(x, t),
        nn.CrossEntropyLoss()(x, t),
        ulps=REDUCED,
        what="float32 target",
    )


def test_cross_entropy_uint8_target():
    x, y = _rand(6, C), _class_target((6, C)).to(torch.uint8)
    assert_close(
        L.CrossEntropyLoss()(x, y),
        nn.CrossEntropyLoss()(x, y),
        ulps=REDUCED,
        what="uint8 target",
    )


# -- torch's edge cases ------------------------------------------------------------------------------

EDGE = [
    ("all ignored", (6, C), "ignored"),
    ("all ignored k-d", (2, C, 3), "ignored"),
    ("empty batch", (0, C), "empty"),
    ("empty k-d", (0, C, 2), "empty"),
    ("empty spatial", (3, C, 0), "empty"),
]


@pytest.mark.parametrize("name,shape,kind", EDGE, ids=[e[0] for e in EDGE])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    "cls", [L.CrossEntropyLoss, L.NLLLoss], ids=lambda c: c.__name__
)
def test_edge_cases_match_torch(name, shape, kind, reduction, weighted, cls):
    """Every target ignored: mean is 0/0 = nan, sum is 0; an empty batch: the same; 'none' keeps the shape."""
    kw = dict(reduction=reduction, weight="rand" if weighted else None)
    ours, theirs = _make(cls, kw)
    y = _class_target(shape)
    if kind == "ignored":
        y.fill_(-100)
    x = _rand(*shape)
    a, b = ours(x, y), theirs(x, y)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert_close(a, b, ulps=0, what=f"{name} {reduction}")  # nan, 0, or empty: exact
    if kind == "ignored" and reduction == "mean":
        assert a.isnan()


def test_empty_probability_target_and_empty_regression():
    x = _rand(0, C)
    assert (
        L.CrossEntropyLoss()(x, x.softmax(1)).isnan()
        and nn.CrossEntropyLoss()(x, x.softmax(1)).isnan()
    )
    assert L.MSELoss()(x, x).isnan() and L.HuberLoss(reduction="sum")(x, x) == 0
    assert L.MultiMarginLoss(reduction="none")(
        x, torch.zeros(0, dtype=torch.long)
    ).shape == (0,)


@pytest.mark.parametrize("big", [1000.0, -1000.0, 1e300])
def test_cross_entropy_extreme_logits(big):
    """Scores of ±1000 (and 1e300) overflow a naive exp; the log-sum-exp form stays exact."""
    x = torch.tensor(
        [[big, 0.0, -big], [big, big, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64
    )
    y = torch.tensor([0, 2, 1])
    for red in ("none", "sum"):
        a, b = (
            L.CrossEntropyLoss(reduction=red)(x, y),
            nn.CrossEntropyLoss(reduction=red)(x, y),
        )
        assert a.isfinite().all()
        assert_close(a, b, ulps=ROW, what=f"extreme {big} {red}")
    xa = x.clone().requires_grad_()
    L.CrossEntropyLoss()(xa, y).backward()
    assert xa.grad.isfinite().all()


# -- NLL, KL, MSE, Huber, hinge ----------------------------------------------------------------------

NLL_OPTIONS = [
    dict(weight=w, ignore_index=ii, reduction=red)
    for w, ii, red in itertools.product(
        (None, "rand"), (-100, 2), ("mean", "sum", "none")
    )
]


@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("kw", NLL_OPTIONS, ids=_ids)
def test_nll(shape, kw):
    ours, theirs = _make(L.NLLLoss, kw)
    logp = torch.log_softmax(_rand(*shape), dim=0 if len(shape) == 1 else 1)
    y = _class_target(shape, ignore=kw["ignore_index"])
    _parity(
        ours,
        theirs,
        logp,
        y,
        f"NLL {shape} {kw}",
        ROW if kw["reduction"] == "none" else REDUCED,
    )


PAIR_SHAPES = [(), (9,), (6, 4), (2, 3, 4)]


@pytest.mark.parametrize("shape", PAIR_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(shape, reduction, log_target):
    ours, theirs = (
        L.KLDivLoss(reduction=reduction, log_target=log_target),
        nn.KLDivLoss(reduction=reduction, log_target=log_target),
    )
    x = _rand(*shape, scale=1.0)
    t = _rand(*shape, seed=5, scale=1.0)
    t = t if log_target else t.exp()  # a probability-like positive target, or its log
    # terms t (log t − x) of both signs can cancel in a sum: a reduced loss is compared relative to the
    # sum of the terms' sizes, the scale of its rounding errors
    terms = (t.exp() if log_target else t) * ((t if log_target else t.log()) - x)
    scale = None if reduction == "none" else terms.abs().sum().item()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _parity(
            ours,
            theirs,
            x,
            t,
            f"KL {shape} {reduction}",
            ROW if reduction == "none" else REDUCED,
            scale,
        )


def test_kl_div_zero_target_and_mean_warning():
    x, t = (
        _rand(3, 4, scale=1.0),
        torch.tensor([[0.0, 0.5, 0.5, 0.0]] * 3, dtype=torch.float64),
    )
    assert_close(
        L.KLDivLoss(reduction="none")(x, t),
        nn.KLDivLoss(reduction="none")(x, t),
        ulps=ROW,
        what="0 log 0",
    )
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        L.KLDivLoss()(x, t)


@pytest.mark.parametrize("shape", PAIR_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize(
    "kind", ["MSELoss", "HuberLoss", "HuberLoss-0.5", "HuberLoss-4"]
)
def test_regression(shape, reduction, kind):
    name, _, delta = kind.partition("-")
    kw = dict(reduction=reduction, **({"delta": float(delta)} if delta else {}))
    ours, theirs = getattr(L, name)(**kw), getattr(nn, name)(**kw)
    _parity(
        ours,
        theirs,
        _rand(*shape),
        _rand(*shape, seed=9),
        f"{kind} {shape}",
        ROW if reduction == "none" else REDUCED,
    )


def test_regression_broadcast_warns_like_torch():
    x, t = _rand(3, 4), _rand(3, 1, seed=2)
    with pytest.warns(UserWarning, match="different to the input size"):
        a = L.MSELoss()(x, t)
    with pytest.warns(UserWarning):
        assert_close(a, nn.MSELoss()(x, t), ulps=REDUCED, what="broadcast MSE")


MM_OPTIONS = [
    dict(p=p, margin=m, weight=w, reduction=r)
    for p, m, w, r in itertools.product(
        (1, 2), (1.0, 0.3, 2.5), (None, "rand"), ("mean", "sum", "none")
    )
]


@pytest.mark.parametrize("shape", [(C,), (8, C), (1, C)], ids=str)
@pytest.mark.parametrize("kw", MM_OPTIONS, ids=_ids)
def test_multi_margin(shape, kw):
    ours, theirs = _make(L.MultiMarginLoss, kw)
    y = _class_target(shape) if len(shape) > 1 else torch.tensor(3)
    _parity(
        ours,
        theirs,
        _rand(*shape, scale=1.0),
        y,
        f"hinge {shape} {kw}",
        ROW if kw["reduction"] == "none" else REDUCED,
    )


# -- the hand-written backward -----------------------------------------------------------------------


def test_cross_entropy_function_gradcheck_and_gradgradcheck():
    z = _rand(4, C, scale=1.0).requires_grad_()
    a = torch.rand(
        4, C, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    ).requires_grad_()
    assert torch.autograd.gradcheck(L.CrossEntropyFunction.apply, (z, a), **GRADCHECK)
    assert torch.autograd.gradgradcheck(
        L.CrossEntropyFunction.apply, (z, a), **GRADCHECK
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(weight="rand", label_smoothing=0.2),
        dict(ignore_index=1, reduction="sum"),
    ],
    ids=_ids,
)
def test_cross_entropy_gradgradcheck_through_options(kw):
    ours, _ = _make(L.CrossEntropyLoss, kw)
    y = _class_target((3, C, 2), ignore=kw.get("ignore_index"))
    x = _rand(3, C, 2, scale=1.0).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ours(x, y), (x,), **GRADCHECK)
    assert torch.autograd.gradgradcheck(lambda x: ours(x, y), (x,), **GRADCHECK)


def test_gradient_is_softmax_minus_target():
    """With one-hot targets and 'sum', ∂ℓ/∂z = softmax(z) − onehot(y), exactly the formula."""
    z = _rand(5, C).requires_grad_()
    y = _class_target((5, C))
    L.CrossEntropyLoss(reduction="sum")(z, y).backward()
    expected = torch.softmax(z.detach(), 1) - torch.nn.functional.one_hot(y, C).double()
    assert_close(z.grad, expected, ulps=GRAD, what="softmax − target")


def test_compare_modules_fits():
    """companion.testing.parity.compare_modules on a cross-entropy with a probability target."""
    x, t = _rand(6, C), torch.softmax(_rand(6, C, seed=3), 1)
    d = compare_modules(
        L.CrossEntropyLoss(reduction="none"),
        nn.CrossEntropyLoss(reduction="none"),
        x,
        t,
    )
    assert (
        max(d.values()) <= GRAD * torch.finfo(torch.float64).eps * 10
    )  # values and gradients are O(1)-O(10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_float32():
    """On a GPU in float32: ours and torch's agree to float32 roundings (loose: other kernels, TF32 off)."""
    x = _rand(16, C, 3).float().cuda()
    y = _class_target((16, C, 3), ignore=-100).cuda()
    w = torch.rand(C, device="cuda") + 0.1
    for kw in ({}, dict(weight=w, label_smoothing=0.1)):
        a, b = L.CrossEntropyLoss(**kw)(x, y), nn.CrossEntropyLoss(**kw)(x, y)
        assert_close(a, b, ulps=REDUCED, what=f"cuda CE {kw}")
    assert_close(
        L.MultiMarginLoss()(x[:, :, 0], y[:, 0].clamp(min=0)),
        nn.MultiMarginLoss()(x[:, :, 0], y[:, 0].clamp(min=0)),
        ulps=REDUCED,
        what="cuda hinge",
    )
