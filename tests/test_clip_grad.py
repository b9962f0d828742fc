"""companion.nn.utils gradient clipping against torch.nn.utils in float64: the returned total norm and
the clipped gradients over norm types, max norms and parameter lists (a single tensor, an iterable,
parameters without a gradient, a generator), error_if_nonfinite, foreach, and clip_grad_value_."""

import inspect
import math

import pytest
import torch

from companion.nn import utils as U
from companion.testing.tolerances import assert_close

# A total norm is a reduction over ~50 entries, then over 3 per-tensor norms, then a power 1/p: tens of
# roundings relative to the norm itself -> NORM = 64. A clipped gradient is one multiplication by the
# coefficient (itself a division of that norm) -> GRAD = 64 as well. Clamping is exact -> 0.
NORM, GRAD = 64, 64
SHAPES = [(4, 3), (3,), (2, 2, 2), ()]


def _params(seed=0, scale=1.0, missing=(), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    ps = []
    for i, s in enumerate(SHAPES):
        p = torch.randn(s, generator=g, dtype=dtype).requires_grad_()
        if i not in missing:
            p.grad = scale * torch.randn(s, generator=g, dtype=dtype)
        ps.append(p)
    return ps


def _copy(ps):
    out = []
    for p in ps:
        q = p.detach().clone().requires_grad_()
        q.grad = None if p.grad is None else p.grad.clone()
        out.append(q)
    return out


NORM_TYPES = [2.0, 1.0, 3.0, 0.5, math.inf, "inf", -math.inf, 0.0]
MAX_NORMS = [0.1, 1.0, 1e6]


@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=str)
@pytest.mark.parametrize("max_norm", MAX_NORMS, ids=str)
@pytest.mark.parametrize("missing", [(), (1,), (0, 3)], ids=str)
def test_clip_grad_norm_matches_torch(norm_type, max_norm, missing):
    ours = _params(scale=5.0, missing=missing)
    theirs = _copy(ours)
    a = U.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    b = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert_close(a, b, ulps=NORM, what=f"total norm p={norm_type}")
    for p, q in zip(ours, theirs):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            assert_close(p.grad, q.grad, ulps=GRAD, what=f"clipped grad p={norm_type}")


def test_single_tensor_generator_and_no_gradients():
    p = _params()[0]
    q = _copy([p])[0]
    assert_close(
        U.clip_grad_norm_(p, 0.5),
        torch.nn.utils.clip_grad_norm_(q, 0.5),
        ulps=NORM,
        what="single",
    )
    assert_close(p.grad, q.grad, ulps=GRAD, what="single tensor grad")
    ps = _params()
    qs = _copy(ps)
    assert_close(
        U.clip_grad_norm_((x for x in ps), 0.5),
        torch.nn.utils.clip_grad_norm_((x for x in qs), 0.5),
        ulps=NORM,
        what="generator",
    )
    with pytest.warns(UserWarning, match="empty generator"):
        none = U.clip_grad_norm_((x for x in []), 1.0)
    assert none.item() == 0.0 and none.dtype == torch.float32
    without = _params(missing=(0, 1, 2, 3))
    assert (
        U.clip_grad_norm_(without, 1.0).item()
        == torch.nn.utils.clip_grad_norm_(_copy(without), 1.0).item()
        == 0.0
    )


def test_norm_below_max_leaves_gradients_unchanged():
    ps = _params(scale=1e-3)
    before = [p.grad.clone() for p in ps]
    U.clip_grad_norm_(ps, 10.0)
    for p, g in zip(ps, before):
        assert_close(
            p.grad, g, ulps=0, what="no clipping below max_norm"
        )  # multiplied by exactly 1.0


def test_clipped_norm_is_max_norm():
    ps = _params(scale=100.0)
    total = U.clip_grad_norm_(ps, 2.0)
    after = torch.cat([p.grad.reshape(-1) for p in ps]).norm()
    # ‖c g‖ = 2 ν / (ν + 10⁻⁶): max_norm up to the 1e-6 guard; a norm over 18 entries -> 64 ε
    assert_close(
        after, 2.0 * total / (total + 1e-6), ulps=64, what="‖g‖ after clipping"
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_error_if_nonfinite(bad):
    ps, qs = _params(), None
    ps[1].grad[0] = bad
    qs = _copy(ps)
    with pytest.raises(RuntimeError) as ours:
        U.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as theirs:
        torch.nn.utils.clip_grad_norm_(qs, 1.0, error_if_nonfinite=True)
    assert str(ours.value) == str(theirs.value)
    a, b = (
        U.clip_grad_norm_(ps, 1.0),
        torch.nn.utils.clip_grad_norm_(qs, 1.0),
    )  # scaled by the bad norm anyway
    assert_close(a, b, ulps=0, what="non-finite norm")
    for p, q in zip(ps, qs):
        assert_close(p.grad, q.grad, ulps=GRAD, what="grad scaled by a non-finite norm")


def test_foreach_accepted_off_refused_on():
    for fn, args in ((U.clip_grad_norm_, (1.0,)), (U.clip_grad_value_, (1.0,))):
        fn(_params(), *args, foreach=None)
        fn(_params(), *args, foreach=False)
        with pytest.raises(ValueError, match="foreach=True is not supported"):
            fn(_params(), *args, foreach=True)


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 1.0, 100.0])
@pytest.mark.parametrize("missing", [(), (2,)], ids=str)
def test_clip_grad_value_matches_torch(clip_value, missing):
    ours = _params(scale=2.0, missing=missing)
    theirs = _copy(ours)
    assert U.clip_grad_value_(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    for p, q in zip(ours, theirs):
        if p.grad is not None:
            assert_close(
                p.grad, q.grad, ulps=0, what="clamped"
            )  # a comparison and a copy: exact
    p = _params()[0]
    q = _copy([p])[0]
    U.clip_grad_value_(p, 0.2)
    torch.nn.utils.clip_grad_value_(q, 0.2)
    assert_close(p.grad, q.grad, ulps=0, what="single tensor")


@pytest.mark.parametrize("name", ["clip_grad_norm_", "clip_grad_value_"])
def test_signature_matches_torch(name):
    def shape(fn):
        return [
            (q.name, q.kind, q.default)
            for q in inspect.signature(fn).parameters.values()
        ]

    assert shape(getattr(U, name)) == shape(getattr(torch.nn.utils, name))


def test_no_torch_norm_is_called(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("torch's norm was called")

    monkeypatch.setattr(torch.linalg, "vector_norm", refuse)
    monkeypatch.setattr(torch, "_foreach_norm", refuse)
    monkeypatch.setattr(torch, "norm", refuse)
    U.clip_grad_norm_(_params(), 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_float32():
    ps = _params(scale=5.0, dtype=torch.float32)
    ps = [p.detach().cuda().requires_grad_() for p in ps]
    for p, g in zip(ps, _params(scale=5.0, dtype=torch.float32)):
        p.grad = g.grad.cuda()
    qs = _copy(ps)
    assert_close(
        U.clip_grad_norm_(ps, 1.0),
        torch.nn.utils.clip_grad_norm_(qs, 1.0),
        ulps=64,
        what="cuda norm",
    )
