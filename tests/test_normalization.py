"""companion.nn normalization layers against torch.nn, driven by one table of constructor arguments and input shapes."""

import inspect

import pytest
import torch
from torch import nn

from companion.nn import norm_layers as ours_nn
from companion.testing.installed_torch import skip_unless_accepts, skip_unless_shown
from companion.testing.parity import compare_modules, max_abs_diff
from conftest import CUDA

TOL = 1e-12  # float64: outputs, gradients and running buffers agree with torch to this tolerance, relative to
# the input's magnitude max(1, |x|max) (a group of one value has σ = 0, and torch's rounding error in x − μ
# is then multiplied by 1/√ε ≈ 316)
GRADCHECK = dict(eps=1e-6, atol=1e-7, rtol=1e-5)  # finite differences in float64
NAMES = [
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "GroupNorm",
]
# The one argument of these layers that an older torch in the supported range may lack
# (or take without printing it, as LayerNorm in torch 2.9): where the installed torch's
# class has no `bias`, a test passing it or comparing the signature skips with the
# reason, and so does the repr test where torch's repr does not print it
# (companion.testing.installed_torch).
NEWER_ARGUMENT = "bias"


def pair(name):
    return getattr(ours_nn, name), getattr(nn, name)


# (class, constructor keywords, input shape): every option alone, some combined, every accepted input rank
CASES = [
    ("BatchNorm1d", dict(num_features=4), (8, 4)),
    ("BatchNorm1d", dict(num_features=4), (5, 4, 3)),
    ("BatchNorm1d", dict(num_features=4), (1, 4, 3)),
    ("BatchNorm1d", dict(num_features=4), (2, 4)),
    ("BatchNorm1d", dict(num_features=4, momentum=None), (6, 4)),
    ("BatchNorm1d", dict(num_features=4, momentum=0.5, eps=1e-3), (6, 4, 2)),
    ("BatchNorm1d", dict(num_features=4, affine=False), (6, 4)),
    ("BatchNorm1d", dict(num_features=4, bias=False), (6, 4)),
    ("BatchNorm1d", dict(num_features=4, track_running_stats=False), (6, 4, 3)),
    (
        "BatchNorm1d",
        dict(num_features=4, affine=False, track_running_stats=False),
        (6, 4),
    ),
    ("BatchNorm2d", dict(num_features=3), (4, 3, 2, 5)),
    ("BatchNorm2d", dict(num_features=3), (1, 3, 2, 2)),
    ("BatchNorm2d", dict(num_features=3, momentum=None, eps=1e-2), (2, 3, 3, 3)),
    ("BatchNorm2d", dict(num_features=3, affine=False, momentum=0.9), (3, 3, 2, 2)),
    (
        "BatchNorm2d",
        dict(num_features=3, track_running_stats=False, bias=False),
        (3, 3, 2, 2),
    ),
    ("LayerNorm", dict(normalized_shape=5), (3, 5)),
    ("LayerNorm", dict(normalized_shape=5), (5,)),
    ("LayerNorm", dict(normalized_shape=[3, 5]), (2, 3, 5)),
    ("LayerNorm", dict(normalized_shape=torch.Size([2, 3])), (2, 4, 2, 3)),
    ("LayerNorm", dict(normalized_shape=5, eps=1e-2), (2, 2, 5)),
    ("LayerNorm", dict(normalized_shape=5, elementwise_affine=False), (3, 5)),
    ("LayerNorm", dict(normalized_shape=5, bias=False), (3, 5)),
    ("LayerNorm", dict(normalized_shape=1), (3, 1)),
    ("InstanceNorm1d", dict(num_features=3), (4, 3, 5)),
    ("InstanceNorm1d", dict(num_features=3), (3, 5)),
    ("InstanceNorm1d", dict(num_features=3, affine=True), (2, 3, 4)),
    ("InstanceNorm1d", dict(num_features=3, affine=True, bias=False), (2, 3, 4)),
    ("InstanceNorm1d", dict(num_features=3, track_running_stats=True), (4, 3, 5)),
    (
        "InstanceNorm1d",
        dict(num_features=3, track_running_stats=True, affine=True, momentum=0.4),
        (3, 5),
    ),
    (
        "InstanceNorm1d",
        dict(num_features=3, track_running_stats=True, momentum=None),
        (2, 3, 4),
    ),
    ("InstanceNorm2d", dict(num_features=3), (2, 3, 4, 5)),
    ("InstanceNorm2d", dict(num_features=3, eps=1e-3), (3, 4, 5)),
    (
        "InstanceNorm2d",
        dict(num_features=3, affine=True, track_running_stats=True),
        (2, 3, 3, 4),
    ),
    ("GroupNorm", dict(num_groups=2, num_channels=6), (4, 6)),
    ("GroupNorm", dict(num_groups=2, num_channels=6), (3, 6, 5)),
    ("GroupNorm", dict(num_groups=3, num_channels=6), (2, 6, 3, 4)),
    ("GroupNorm", dict(num_groups=1, num_channels=6), (2, 6, 3)),
    ("GroupNorm", dict(num_groups=6, num_channels=6), (2, 6, 3)),
    ("GroupNorm", dict(num_groups=6, num_channels=6), (3, 6)),
    (
        "GroupNorm",
        dict(num_groups=2, num_channels=4, eps=1e-3, affine=False),
        (3, 4, 2),
    ),
    ("GroupNorm", dict(num_groups=2, num_channels=4, bias=False), (3, 4, 2)),
    ("GroupNorm", dict(num_groups=2, num_channels=4), (1, 4)),
]
IDS = [
    f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}-{'x'.join(map(str, s))}"
    for n, kw, s in CASES
]


def make_ours(name, kwargs, seed=0):
    """Ours in float64 with random affine parameters."""
    ours = getattr(ours_nn, name)(**kwargs, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(1 + 0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return ours


def make_pair(name, kwargs, seed=0):
    """Ours and torch's in float64 with the same random affine parameters (the test
    skips where the installed torch's class lacks one of the arguments)."""
    skip_unless_accepts(getattr(nn, name), *kwargs)
    ours = make_ours(name, kwargs, seed)
    theirs = getattr(nn, name)(**kwargs, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def batch(shape, k, seed=0):
    """The k-th input batch: shifted and scaled differently each time, so the running statistics move."""
    gen = torch.Generator().manual_seed(seed + 100 * k)
    return (
        3.0 * (k + 1) * torch.randn(shape, generator=gen, dtype=torch.float64) + 2.0 - k
    )


def scale(x):
    """The input's magnitude max(1, max|x|), which the float64 tolerance is relative to."""
    return max(1.0, x.abs().max().item()) if x.numel() else 1.0


def assert_buffers_equal(ours, theirs, tol=TOL):
    a, b = dict(ours.named_buffers()), dict(theirs.named_buffers())
    assert a.keys() == b.keys()
    for key in a:
        assert max_abs_diff(a[key].double(), b[key].double()) <= tol, key


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_parity_train_then_eval(name, kwargs, shape):
    """Four training batches (output, input and parameter gradients, running buffers after each), then eval."""
    ours, theirs = make_pair(name, kwargs)
    for k in range(4):
        x = batch(shape, k)
        diffs = compare_modules(ours, theirs, x)
        assert max(diffs.values()) < TOL * scale(x), (k, diffs)
        assert_buffers_equal(ours, theirs, tol=TOL * scale(x))
    ours.eval()
    theirs.eval()
    x = batch(shape, 9)
    diffs = compare_modules(ours, theirs, x)
    assert max(diffs.values()) < TOL * scale(x), diffs
    assert_buffers_equal(ours, theirs, tol=TOL * scale(x))


def functional(module):
    """The module as a function of (input, *parameters), for gradcheck."""
    names = [n for n, _ in module.named_parameters()]

    def f(x, *params):
        return torch.func.functional_call(module, dict(zip(names, params)), (x,))

    return f, [
        p.detach().clone().requires_grad_() for _, p in module.named_parameters()
    ]


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_gradcheck_and_gradgradcheck(name, kwargs, shape):
    """The hand-written backward against finite differences, and its own derivative (training mode)."""
    ours = make_ours(name, kwargs)
    f, params = functional(ours)
    x = batch(shape, 0).requires_grad_()
    assert torch.autograd.gradcheck(f, (x, *params), **GRADCHECK)
    assert torch.autograd.gradgradcheck(f, (x, *params), **GRADCHECK)


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_state_dict_interchange(name, kwargs, shape):
    """Same keys; torch's trained state_dict loads into ours and ours into torch's, and both then agree in eval."""
    ours, theirs = make_pair(name, kwargs, seed=1)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():
        for k in range(3):
            theirs(batch(shape, k))
    fresh_ours, fresh_theirs = make_pair(name, kwargs, seed=2)
    fresh_ours.load_state_dict(theirs.state_dict())
    fresh_theirs.load_state_dict(fresh_ours.state_dict())
    assert_buffers_equal(fresh_ours, theirs, tol=0.0)
    assert_buffers_equal(fresh_theirs, theirs, tol=0.0)
    for m in (fresh_ours, fresh_theirs):
        m.eval()
    x = batch(shape, 7)
    assert max_abs_diff(fresh_ours(x), fresh_theirs(x)) < TOL * scale(x)


@pytest.mark.parametrize("name", NAMES)
def test_signature(name):
    ours, theirs = pair(name)
    skip_unless_accepts(theirs, NEWER_ARGUMENT)
    a, b = inspect.signature(ours.__init__), inspect.signature(theirs.__init__)
    assert [(p.name, p.kind, p.default) for p in a.parameters.values()] == [
        (p.name, p.kind, p.default) for p in b.parameters.values()
    ]


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_repr_and_factory_kwargs(name, kwargs, shape):
    ours_cls, theirs_cls = pair(name)
    module = ours_cls(**kwargs, dtype=torch.float64, device="cpu")
    for t in list(module.parameters()) + [
        b for n, b in module.named_buffers() if n != "num_batches_tracked"
    ]:
        assert t.dtype == torch.float64 and t.device.type == "cpu"
    skip_unless_accepts(theirs_cls, *kwargs)
    theirs = repr(theirs_cls(**kwargs)).replace("torch.nn.", "")
    what = f"`{NEWER_ARGUMENT}` in {name}'s repr"
    skip_unless_shown(theirs, f"{NEWER_ARGUMENT}=", what)
    assert repr(ours_cls(**kwargs)) == theirs


def test_batchnorm_semantics():
    """Biased variance to normalize, unbiased in the running estimate; eval is a fixed map per example."""
    bn = ours_nn.BatchNorm1d(3, momentum=1.0, affine=False, dtype=torch.float64)
    x = batch((10, 3), 0)
    y = bn(x)
    assert (
        max_abs_diff(y.var(0, correction=0), torch.ones(3, dtype=torch.float64)) < 1e-4
    )  # ε = 1e-5
    assert max_abs_diff(bn.running_var, x.var(0, correction=1)) < TOL
    bn.eval()
    alone = torch.cat([bn(x[i : i + 1]) for i in range(10)])
    assert max_abs_diff(alone, bn(x)) < TOL


def test_cumulative_moving_average():
    """momentum=None keeps the plain average of the batch statistics."""
    bn = ours_nn.BatchNorm1d(3, momentum=None, dtype=torch.float64)
    xs = [batch((6, 3), k) for k in range(5)]
    for x in xs:
        bn(x)
    assert (
        max_abs_diff(bn.running_mean, torch.stack([x.mean(0) for x in xs]).mean(0))
        < TOL
    )
    assert (
        max_abs_diff(bn.running_var, torch.stack([x.var(0) for x in xs]).mean(0)) < TOL
    )
    assert bn.num_batches_tracked.item() == 5


def test_same_computation_over_different_axes():
    """GroupNorm with one group is LayerNorm over (C, H, W); with C groups it is InstanceNorm."""
    x = batch((3, 4, 2, 5), 0)
    gn1 = ours_nn.GroupNorm(1, 4, affine=False)(x)
    ln = ours_nn.LayerNorm([4, 2, 5], elementwise_affine=False)(x)
    gnc = ours_nn.GroupNorm(4, 4, affine=False)(x)
    inn = ours_nn.InstanceNorm2d(4)(x)
    assert max_abs_diff(gn1, ln) < TOL and max_abs_diff(gnc, inn) < TOL


@CUDA
@pytest.mark.parametrize("name,kwargs,shape", CASES[::3], ids=IDS[::3])
def test_cuda_parity(name, kwargs, shape):
    """float32 on the GPU, compared with torch's CUDA kernels (tolerance 1e-4)."""
    ours, theirs = make_pair(name, kwargs)
    ours, theirs = ours.float().cuda(), theirs.float().cuda()
    for k in range(3):
        diffs = compare_modules(
            ours, theirs, batch(shape, k).float().cuda() / (3.0 * (k + 1))
        )
        assert max(diffs.values()) < 1e-4, diffs
        assert_buffers_equal(ours, theirs, tol=1e-4)
    ours.eval()
    theirs.eval()
    diffs = compare_modules(ours, theirs, batch(shape, 9).float().cuda() / 30.0)
    assert max(diffs.values()) < 1e-4, diffs
