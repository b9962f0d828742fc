"""companion.nn MaxPool1d/2d and AvgPool1d/2d against torch.nn, driven by a table of (class, constructor
arguments, input shape).

Max pooling copies one input per window, so its output equals torch's bit for bit and its indices are torch's
exactly (its input gradient adds overlapping windows' gradients, within MAX_GRAD_ULPS); average pooling sums a window (at most 9 terms here) in another order and
divides, within AVG_ULPS. Also: gradcheck and gradgradcheck, torch's signature, attributes and repr, ties,
ceil mode's rule, and every error torch raises for bad arguments and inputs, with its type and words.
"""

import inspect

import pytest
import torch
from torch import nn

import companion.nn as cnn
from companion.core.device import rng_seed
from companion.nn.pooling import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from companion.testing.installed_torch import raised
from companion.testing.parity import assert_modules_close

from test_conv import AtenOps

# a max is a copy of one input (its output is compared bit for bit); its input gradient adds the upstream
# gradients of the (at most 9) overlapping windows that pick the same input, in another order than torch
MAX_GRAD_ULPS = 16
# a sum of at most 9 terms in another order, then one division: within 9 ε of the terms' scale, which is the
# output's scale or less (the terms are the window's values, averaged); 16 for margin
AVG_ULPS = 16
CUDA_ULPS = 64  # float32 on the GPU: the same arithmetic, bounded in float32's ε

CASES = [
    ("MaxPool1d", dict(kernel_size=2), (2, 3, 10)),
    ("MaxPool1d", dict(kernel_size=3, stride=1, padding=1), (2, 3, 9)),
    ("MaxPool1d", dict(kernel_size=3, stride=2, ceil_mode=True), (2, 3, 10)),
    ("MaxPool1d", dict(kernel_size=4, stride=3, padding=2, ceil_mode=True), (2, 3, 11)),
    ("MaxPool1d", dict(kernel_size=3, dilation=2, padding=1, stride=2), (2, 3, 12)),
    (
        "MaxPool1d",
        dict(kernel_size=(3,), stride=(2,), padding=(1,), return_indices=True),
        (2, 3, 9),
    ),
    (
        "MaxPool1d",
        dict(kernel_size=2, dilation=3, ceil_mode=True, return_indices=True),
        (2, 3, 11),
    ),
    ("MaxPool1d", dict(kernel_size=3, stride=2), (3, 10)),  # unbatched
    ("MaxPool2d", dict(kernel_size=2), (2, 3, 8, 6)),
    ("MaxPool2d", dict(kernel_size=3, stride=1, padding=1), (2, 3, 6, 5)),
    (
        "MaxPool2d",
        dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
        (2, 3, 7, 6),
    ),
    (
        "MaxPool2d",
        dict(kernel_size=3, stride=2, ceil_mode=True, return_indices=True),
        (2, 3, 8, 7),
    ),
    (
        "MaxPool2d",
        dict(kernel_size=(2, 3), dilation=(2, 1), padding=(1, 1), return_indices=True),
        (2, 3, 7, 7),
    ),
    (
        "MaxPool2d",
        dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True),
        (2, 3, 9, 8),
    ),
    ("MaxPool2d", dict(kernel_size=2, return_indices=True), (3, 6, 5)),  # unbatched
    ("AvgPool1d", dict(kernel_size=2), (2, 3, 10)),
    ("AvgPool1d", dict(kernel_size=3, stride=1, padding=1), (2, 3, 9)),
    (
        "AvgPool1d",
        dict(kernel_size=3, stride=1, padding=1, count_include_pad=False),
        (2, 3, 9),
    ),
    ("AvgPool1d", dict(kernel_size=3, stride=2, ceil_mode=True), (2, 3, 10)),
    ("AvgPool1d", dict(kernel_size=4, stride=3, padding=2, ceil_mode=True), (2, 3, 11)),
    (
        "AvgPool1d",
        dict(
            kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False
        ),
        (2, 3, 11),
    ),
    ("AvgPool1d", dict(kernel_size=(3,), stride=(2,)), (3, 10)),  # unbatched
    ("AvgPool2d", dict(kernel_size=2), (2, 3, 8, 6)),
    ("AvgPool2d", dict(kernel_size=3, stride=1, padding=1), (2, 3, 6, 5)),
    (
        "AvgPool2d",
        dict(kernel_size=3, stride=1, padding=1, count_include_pad=False),
        (2, 3, 6, 5),
    ),
    (
        "AvgPool2d",
        dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
        (2, 3, 8, 6),
    ),
    (
        "AvgPool2d",
        dict(
            kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False
        ),
        (2, 3, 8, 7),
    ),
    (
        "AvgPool2d",
        dict(kernel_size=3, stride=2, padding=1, divisor_override=4),
        (2, 3, 7, 7),
    ),
    (
        "AvgPool2d",
        dict(kernel_size=2, stride=3, ceil_mode=True, divisor_override=-3),
        (2, 3, 8, 7),
    ),
    ("AvgPool2d", dict(kernel_size=2, padding=1), (3, 5, 6)),  # unbatched
    ("AvgPool2d", dict(kernel_size=2), (0, 3, 4, 4)),  # an empty batch
]
IDS = [
    f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}-{shape}"
    for name, kw, shape in CASES
]


def batch(shape, seed=1, dtype=torch.float64):
    return torch.randn(
        shape, generator=torch.Generator().manual_seed(rng_seed(seed)), dtype=dtype
    )


class Values(nn.Module):
    """The pooled values of a layer that may also return indices."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        out = self.layer(x)
        return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_output_gradient_and_indices_like_torch(name, kwargs, shape):
    ours, theirs = getattr(cnn, name)(**kwargs), getattr(nn, name)(**kwargs)
    x = batch(shape)
    assert_modules_close(
        Values(ours),
        Values(theirs),
        x,
        ulps=MAX_GRAD_ULPS if name.startswith("Max") else AVG_ULPS,
    )
    if name.startswith("Max"):
        assert torch.equal(Values(ours)(x), Values(theirs)(x))
    if kwargs.get("return_indices"):
        (_, ours_idx), (_, theirs_idx) = ours(x), theirs(x)
        assert ours_idx.dtype == theirs_idx.dtype and torch.equal(ours_idx, theirs_idx)


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_attributes_and_repr_like_torch(name, kwargs, shape):
    ours, theirs = getattr(cnn, name)(**kwargs), getattr(nn, name)(**kwargs)
    for attr in theirs.__constants__:
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert repr(ours) == repr(theirs)
    assert ours.state_dict() == theirs.state_dict() == {}


@pytest.mark.parametrize("name", ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d"])
def test_signature_and_constants(name):
    ours, theirs = getattr(cnn, name), getattr(nn, name)
    spec = lambda cls: [
        (p.name, p.kind, p.default)
        for p in inspect.signature(cls.__init__).parameters.values()
    ]
    assert spec(ours) == spec(theirs)
    assert ours.__constants__ == theirs.__constants__


def test_ties_go_to_the_first_maximum_like_torch():
    """On ties both return the window's first maximum (row-major) and send it the whole gradient; a window
    holding NaNs gives NaN, indexing the last of them as torch's CPU kernel does; a real −∞ beats the −∞ padding (its index points into the input)."""
    x = torch.tensor([[[1.0, 3.0, 3.0, 3.0, 0.0, 0.0, -2.0, 5.0]]], dtype=torch.float64)
    for kwargs in (
        dict(kernel_size=3, stride=1, padding=1),
        dict(kernel_size=2, dilation=2, ceil_mode=True),
    ):
        outs = []
        for module in (cnn, nn):
            xi = x.clone().requires_grad_()
            y, idx = module.MaxPool1d(**kwargs, return_indices=True)(xi)
            y.sum().backward()
            outs.append((y.detach(), idx, xi.grad))
        for a, b in zip(*outs):
            assert torch.equal(a, b)
    grid = torch.zeros(1, 4, 4, dtype=torch.float64)
    assert torch.equal(
        cnn.MaxPool2d(2, return_indices=True)(grid)[1],
        nn.MaxPool2d(2, return_indices=True)(grid)[1],
    )
    nan = torch.tensor(
        [[1.0, float("nan"), float("nan"), 2.0, float("nan"), 5.0, 0.5, 0.0, -1.0]]
    )
    (ours_y, ours_i), (theirs_y, theirs_i) = (
        m.MaxPool1d(3, return_indices=True)(nan) for m in (cnn, nn)
    )
    assert torch.equal(ours_y.isnan(), theirs_y.isnan()) and torch.equal(
        ours_i, theirs_i
    )  # the last NaN: 2, 4
    low = torch.full((1, 4), -float("inf"))
    assert torch.equal(
        cnn.MaxPool1d(3, 1, 1, return_indices=True)(low)[1],
        nn.MaxPool1d(3, 1, 1, return_indices=True)(low)[1],
    )


def test_ceil_mode_windows_and_their_divisors():
    """L = 5, k = 2, s = 2, p = 1: ceil would give 4 windows, but the 4th would start at 6 ≥ L + p: 3 windows.
    L = 6, k = 3, s = 2, p = 1: the last window [5, 8) runs past the padded input [−1, 7): with
    count_include_pad it is divided by its clipped size 2 (one input, one pad), without by 1."""
    x = batch((1, 1, 5))
    for layer in (
        cnn.MaxPool1d(2, 2, 1, ceil_mode=True),
        cnn.AvgPool1d(2, 2, 1, ceil_mode=True),
    ):
        assert layer(x).shape[-1] == 3
    ones = torch.ones(1, 1, 6, dtype=torch.float64)
    for count_include_pad, last in ((True, 0.5), (False, 1.0)):
        ours = cnn.AvgPool1d(
            3, 2, 1, ceil_mode=True, count_include_pad=count_include_pad
        )(ones)
        assert ours.shape[-1] == 4 and ours[0, 0, -1].item() == last
        assert torch.equal(
            ours,
            nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=count_include_pad)(
                ones
            ),
        )


GRADCHECK = [
    (
        "MaxPool1d",
        dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True),
        (2, 2, 9),
    ),
    ("MaxPool2d", dict(kernel_size=(2, 3), stride=1, padding=(1, 1)), (1, 2, 4, 5)),
    (
        "AvgPool1d",
        dict(
            kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False
        ),
        (2, 2, 8),
    ),
    (
        "AvgPool2d",
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        (1, 2, 6, 5),
    ),
    ("AvgPool2d", dict(kernel_size=2, divisor_override=3), (2, 4, 4)),
]


@pytest.mark.parametrize(
    "name,kwargs,shape", GRADCHECK, ids=[f"{n}-{s}" for n, _, s in GRADCHECK]
)
def test_gradcheck(name, kwargs, shape):
    """First and second derivatives against finite differences (continuous random input: no ties, so the
    arg-max does not move under the perturbation)."""
    layer = getattr(cnn, name)(**kwargs)
    x = batch(shape).requires_grad_()
    assert torch.autograd.gradcheck(layer, (x,))
    assert torch.autograd.gradgradcheck(layer, (x,))


def test_functionals_match_torchs():
    x1, x2 = batch((2, 3, 9)), batch((2, 3, 7, 6))
    torch_f = torch.nn.functional
    assert torch.equal(
        max_pool1d(x1, 3, 2, 1, 1, True), torch_f.max_pool1d(x1, 3, 2, 1, 1, True)
    )
    for a, b in zip(
        max_pool2d(x2, 3, 2, 1, return_indices=True),
        torch_f.max_pool2d(x2, 3, 2, 1, return_indices=True),
    ):
        assert torch.equal(a, b)
    assert (
        avg_pool1d(x1, 3, 2, 1, True, False)
        - torch_f.avg_pool1d(x1, 3, 2, 1, True, False)
    ).abs().max() < 1e-15
    assert (
        avg_pool2d(x2, 3, 2, 1, True, True, 5)
        - torch_f.avg_pool2d(x2, 3, 2, 1, True, True, 5)
    ).abs().max() < 1e-15


X1, X2 = (2, 3, 10), (2, 3, 8, 8)
ERRORS = [
    ("MaxPool1d", dict(kernel_size=3, padding=2), X1),
    ("MaxPool1d", dict(kernel_size=3, padding=3, dilation=2), X1),
    ("MaxPool1d", dict(kernel_size=3, stride=0), X1),
    ("MaxPool1d", dict(kernel_size=0), X1),
    ("MaxPool1d", dict(kernel_size=0, stride=1), X1),
    ("MaxPool1d", dict(kernel_size=2, dilation=0), X1),
    ("MaxPool1d", dict(kernel_size=2, padding=-1), X1),
    ("MaxPool1d", dict(kernel_size=11), X1),
    ("MaxPool1d", dict(kernel_size=2), (10,)),
    ("MaxPool1d", dict(kernel_size=2), (1, 2, 3, 10)),
    ("MaxPool1d", dict(kernel_size=2), (2, 3, 0)),
    ("MaxPool1d", dict(kernel_size=(2, 2)), X1),
    ("MaxPool1d", dict(kernel_size=2, stride=(1, 1)), X1),
    ("MaxPool1d", dict(kernel_size=2, padding=(1, 1)), X1),
    ("MaxPool1d", dict(kernel_size=2, dilation=(1, 1)), X1),
    ("MaxPool1d", dict(kernel_size=3, padding=2, return_indices=True), X1),
    ("MaxPool1d", dict(kernel_size=3, padding=2, dilation=2, return_indices=True), X1),
    ("MaxPool1d", dict(kernel_size=3, stride=0, return_indices=True), X1),
    ("MaxPool1d", dict(kernel_size=0, stride=1, return_indices=True), X1),
    ("MaxPool1d", dict(kernel_size=2, dilation=0, return_indices=True), X1),
    ("MaxPool1d", dict(kernel_size=2, padding=-1, return_indices=True), X1),
    ("MaxPool1d", dict(kernel_size=11, return_indices=True), X1),
    ("MaxPool1d", dict(kernel_size=2, return_indices=True), (10,)),
    ("MaxPool1d", dict(kernel_size=(2, 2), return_indices=True), X1),
    ("MaxPool1d", dict(kernel_size=2, stride=(1, 1), return_indices=True), X1),
    ("MaxPool2d", dict(kernel_size=3, padding=(1, 2)), X2),
    ("MaxPool2d", dict(kernel_size=3, padding=2, dilation=2), X2),
    (
        "MaxPool2d",
        dict(kernel_size=3, padding=(0, 2), dilation=2, return_indices=True),
        X2,
    ),
    ("MaxPool2d", dict(kernel_size=3, stride=(1, 0)), X2),
    ("MaxPool2d", dict(kernel_size=2, stride=(1, -1)), X2),
    ("MaxPool2d", dict(kernel_size=0), X2),
    ("MaxPool2d", dict(kernel_size=(0, 2), stride=1), X2),
    ("MaxPool2d", dict(kernel_size=2, dilation=(1, 0)), X2),
    ("MaxPool2d", dict(kernel_size=2, padding=-1), X2),
    ("MaxPool2d", dict(kernel_size=(9, 2)), X2),
    ("MaxPool2d", dict(kernel_size=2), (3, 10)),
    ("MaxPool2d", dict(kernel_size=2), (1, 2, 3, 4, 5)),
    ("MaxPool2d", dict(kernel_size=2), (2, 0, 4, 4)),
    ("MaxPool2d", dict(kernel_size=(2, 2, 2)), X2),
    ("MaxPool2d", dict(kernel_size=2, stride=(1, 1, 1)), X2),
    ("MaxPool2d", dict(kernel_size=2, padding=(1, 1, 1)), X2),
    ("MaxPool2d", dict(kernel_size=2, dilation=(1, 1, 1)), X2),
    ("AvgPool1d", dict(kernel_size=3, padding=2), X1),
    ("AvgPool1d", dict(kernel_size=3, stride=0), X1),
    ("AvgPool1d", dict(kernel_size=0), X1),
    ("AvgPool1d", dict(kernel_size=0, stride=1), X1),
    ("AvgPool1d", dict(kernel_size=2, padding=-1), X1),
    ("AvgPool1d", dict(kernel_size=11), X1),
    ("AvgPool1d", dict(kernel_size=2), (10,)),
    ("AvgPool1d", dict(kernel_size=2), X2),
    ("AvgPool1d", dict(kernel_size=(2, 2)), X1),
    ("AvgPool1d", dict(kernel_size=2, stride=(1, 1)), X1),
    ("AvgPool1d", dict(kernel_size=2, padding=(1, 1)), X1),
    ("AvgPool2d", dict(kernel_size=3, padding=(1, 2)), X2),
    ("AvgPool2d", dict(kernel_size=2, stride=0), X2),
    ("AvgPool2d", dict(kernel_size=0, stride=1), X2),
    ("AvgPool2d", dict(kernel_size=2, padding=(0, -1)), X2),
    ("AvgPool2d", dict(kernel_size=(2, 9)), X2),
    ("AvgPool2d", dict(kernel_size=2, divisor_override=0), X2),
    ("AvgPool2d", dict(kernel_size=2), (1, 2, 3, 4, 5)),
    ("AvgPool2d", dict(kernel_size=2), (4, 4)),
    ("AvgPool2d", dict(kernel_size=(2, 2, 2)), X2),
    ("AvgPool2d", dict(kernel_size=2, stride=(1, 1, 1)), X2),
    ("AvgPool2d", dict(kernel_size=2, padding=(1, 1, 1)), X2),
]


@pytest.mark.parametrize(
    "name,kwargs,shape", ERRORS, ids=[f"{n}-{k}-{s}" for n, k, s in ERRORS]
)
def test_errors_like_torch(name, kwargs, shape):
    """The same exception type and words as torch's CPU kernels (which vary by path: 1-D max pooling without
    indices has its own checks; with indices, and 1-D average pooling, torch runs 2-D pooling over a height 1)."""
    x = torch.randn(shape)
    ours, theirs = (
        raised(lambda: getattr(module, name)(**kwargs)(x)) for module in (cnn, nn)
    )
    assert theirs is not None
    assert ours == theirs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name,kwargs,shape", CASES[::3], ids=IDS[::3])
def test_cuda(name, kwargs, shape):
    """float32 on the GPU against torch's CUDA kernels; indices equal."""
    ours, theirs = getattr(cnn, name)(**kwargs), getattr(nn, name)(**kwargs)
    x = batch(shape, dtype=torch.float32).cuda()
    assert_modules_close(Values(ours), Values(theirs), x, ulps=CUDA_ULPS)
    if kwargs.get("return_indices"):
        assert torch.equal(ours(x)[1], theirs(x)[1])


def test_runs_no_torch_pooling_kernel():
    """From scratch: forward and backward run no aten pooling kernel; torch's own layer does (so the check can
    fail)."""
    for name, kwargs, shape in CASES:
        for module, runs_kernel in ((cnn, False), (nn, True)):
            x = batch(shape).requires_grad_()
            with AtenOps() as ops:
                Values(getattr(module, name)(**kwargs))(x).sum().backward()
            found = {n for n in ops.names if "pool" in n}
            assert bool(found) == runs_kernel, (name, kwargs, found)
