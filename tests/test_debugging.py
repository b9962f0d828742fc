"""companion.core.debugging: each check passes on a healthy setup and flags a broken one, and its
arithmetic (finite differences, counts, condition numbers) equals a computation by hand. The range test
itself belongs to companion.core.lr_range (tested there); here only its reading, learning_rate_check."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.core.data import Split, make_classification
from companion.core.debugging import (
    Check,
    gradient_check,
    hessian_condition,
    initial_loss,
    learning_rate_check,
    overfit_batch,
    preprocessing_check,
    standardize,
    train_step,
    unit_activity,
)
from companion.core.lr_range import RangeTest, lr_range_test
from companion.testing.tolerances import assert_close

EPS = torch.finfo(torch.float64).eps


def _net(seed=0, hidden=16, classes=3, activation=nn.ReLU):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, hidden), activation(), nn.Linear(hidden, classes)
    ).double()


def _blobs(n=120, seed=0):
    return make_classification(n=n, d=2, classes=3, seed=seed, dtype=torch.float64)


def test_check_str():
    assert str(Check("x", True, 1.0, 2.0, "fine")) == "ok   x: fine"
    assert str(Check("x", False, 1.0, 2.0, "bad")).startswith("FLAG x")


def test_initial_loss_is_log_c_for_zero_logits():
    net = _net(classes=7)
    nn.init.zeros_(net[2].weight)
    nn.init.zeros_(net[2].bias)
    data = make_classification(n=50, d=2, classes=7, dtype=torch.float64)
    check = initial_loss(net, data.X, data.y)
    # log-sum-exp of seven zeros is log 7 up to a few roundings
    assert_close(
        torch.tensor(check.measured),
        torch.tensor(math.log(7)),
        ulps=4,
        what="initial loss",
    )
    assert check.passed and check.reference == math.log(7)


def test_initial_loss_flags_large_logits():
    net = _net()
    with torch.no_grad():
        net[2].weight.mul_(100)
    data = _blobs()
    assert not initial_loss(net, data.X, data.y).passed
    assert net.training  # the mode is restored


def test_overfit_batch_passes_for_a_working_step_and_flags_a_broken_one():
    data = _blobs(n=16)
    net = _net(hidden=32)
    good = overfit_batch(
        train_step(net, torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)),
        data.X,
        data.y,
        steps=300,
    )
    assert good.passed and good.measured < 0.05 and len(good.details["losses"]) == 300
    stuck = overfit_batch(lambda X, y: 1.0, data.X, data.y, steps=5)
    assert not stuck.passed
    diverged = overfit_batch(lambda X, y: math.nan, data.X, data.y, steps=5)
    assert not diverged.passed
    # a diverging step whose loss touches 0 at the very end (as a missing zero_grad can) is still flagged
    losses = iter([2.0] * 30 + [1e15, 0.0] * 10)
    bouncing = overfit_batch(lambda X, y: next(losses), data.X, data.y, steps=50)
    assert (
        bouncing.details["losses"][-1] == 0.0
        and bouncing.measured == 1e15
        and not bouncing.passed
    )


def test_gradient_check_accepts_autograd_and_flags_doubled_gradients():
    net, data = _net(), _blobs(n=40)
    params = list(net.parameters())
    before = [p.detach().clone() for p in params]
    loss = lambda: F.cross_entropy(net(data.X), data.y)
    ok = gradient_check(loss, params, entries=20)
    # central differences with ε = 1e-6: truncation ~1e-12, rounding ~ε_mach·|L|/ε ~ 1e-10 of the gradient scale
    assert ok.passed and ok.measured < 1e-7
    for p, b in zip(params, before):
        assert_close(p, b, ulps=0, what="parameters restored after the perturbations")
    grads = torch.autograd.grad(loss(), params)
    doubled = gradient_check(loss, params, grads=[2 * g for g in grads], entries=20)
    assert not doubled.passed and abs(doubled.measured - 1.0) < 1e-6


class _WrongTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y)  # bug: should be 1 − y²


def test_gradient_check_catches_a_wrong_backward():
    w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(8, 5, dtype=torch.float64)
    check = gradient_check(
        lambda: _WrongTanh.apply(x @ w).pow(2).sum(), [w], entries=15
    )
    assert not check.passed and check.measured > 1e-2


def test_gradient_check_needs_float64():
    w = torch.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match="float64"):
        gradient_check(lambda: (w**2).sum(), [w])


def test_learning_rate_check_on_a_real_range_test():
    net, data = _net(), _blobs()
    sgd = lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)
    result = lr_range_test(
        net,
        sgd,
        data,
        lr_min=1e-3,
        lr_max=10.0,
        steps=60,
        batch_size=16,
        generator=torch.Generator().manual_seed(0),
    )
    assert learning_rate_check(result, result.minimum() / 10).passed
    assert not learning_rate_check(result, result.minimum() * 10).passed
    shuffled = Split(
        data.X,
        data.y[torch.randperm(len(data.y), generator=torch.Generator().manual_seed(1))],
    )
    flat = lr_range_test(
        net,
        sgd,
        shuffled,
        lr_min=1e-3,
        lr_max=10.0,
        steps=60,
        batch_size=16,
        generator=torch.Generator().manual_seed(0),
    )
    assert not learning_rate_check(
        flat, result.minimum() / 10
    ).passed  # random labels: the loss never halves


def test_learning_rate_check_cases():
    r = RangeTest(lrs=[1e-3, 1e-2, 1e-1], raw=[2.3, 1.0, 5.0], losses=[2.3, 1.0, 5.0])
    assert learning_rate_check(r, 1e-3).passed and learning_rate_check(r, 1e-2).passed
    assert not learning_rate_check(r, 1e-1).passed
    assert learning_rate_check(r, 1e-3).details == {"start_loss": 2.3, "min_loss": 1.0}
    flat = RangeTest(lrs=[1e-3, 1e-2], raw=[2.3, 2.2], losses=[2.3, 2.2])
    check = learning_rate_check(flat, 1e-3)
    assert not check.passed and "never fell" in check.message
    diverged = RangeTest(
        lrs=[1e-3, 1e-2, 1e-1], raw=[2.0, 0.5, math.nan], losses=[2.0, 0.5, math.nan]
    )
    assert (
        learning_rate_check(diverged, 1e-2).passed
        and not learning_rate_check(diverged, 1e-1).passed
    )
    with pytest.raises(ValueError, match="no finite loss"):
        learning_rate_check(
            RangeTest(lrs=[1e-3], raw=[math.nan], losses=[math.nan]), 1e-3
        )


def test_unit_activity_counts_dead_and_saturated_units():
    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        net[0].weight.copy_(
            torch.tensor([[1.0, 0.0], [0.0, 1.0], [100.0, 0.0], [0.0, 0.0]])
        )
        net[0].bias.copy_(
            torch.tensor([0.0, 0.0, 0.0, -10.0])
        )  # unit 3: z = −10 always (dead, saturated)
    X = torch.tensor(
        [[0.5, -0.5], [1.0, 1.0], [-1.0, 0.2], [0.3, 0.1]], dtype=torch.float64
    )
    check = unit_activity(net, X)
    assert check.details["dead"] == [0.25]  # only unit 3 is ≤ 0 on every row
    assert check.details["saturated"] == [
        0.5
    ]  # units 2 (|100 x₁| > 3 on all rows) and 3
    assert check.passed  # saturation not checked unless asked
    assert not unit_activity(net, X, max_saturated=0.2).passed
    assert not unit_activity(net, X, max_dead=0.2).passed
    with torch.no_grad():
        net[0].weight[0, 0] = math.inf
    flagged = unit_activity(net, X)
    assert not flagged.passed and "non-finite" in flagged.message


def test_standardize():
    g = torch.Generator().manual_seed(0)
    X = torch.cat(
        [
            3 + 5 * torch.randn(100, 3, generator=g, dtype=torch.float64),
            torch.full((100, 1), 7.0, dtype=torch.float64),
        ],
        dim=1,
    )
    Xs, mean, std = standardize(X)
    # means of 100 standardized values: rounding of a sum, a few ulps of the data scale (~3)
    assert_close(
        Xs.mean(0),
        torch.zeros(4, dtype=torch.float64),
        ulps=64,
        scale=1.0,
        what="mean 0",
    )
    assert_close(
        Xs[:, :3].std(0), torch.ones(3, dtype=torch.float64), ulps=64, what="std 1"
    )
    assert std[3] == 1.0 and torch.all(
        Xs[:, 3] == 0
    )  # a constant feature becomes 0, not NaN
    Ys, _, _ = standardize(X[:10], mean, std)
    assert_close(Ys, Xs[:10], ulps=0, what="the same statistics give the same values")


def test_hessian_condition_by_hand():
    # centred orthogonal columns with mean squares 0.5 and 2, plus the bias: H = diag(0.5, 2, 1), κ = 4
    X = torch.tensor(
        [[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=torch.float64
    )
    assert_close(
        torch.tensor(hessian_condition(X)), torch.tensor(4.0), ulps=16, what="κ"
    )  # a 3×3 eigensolver
    assert_close(
        torch.tensor(hessian_condition(X, bias=False)),
        torch.tensor(4.0),
        ulps=16,
        what="κ without bias",
    )
    with_blank = torch.cat(
        [X, torch.zeros(4, 1, dtype=torch.float64)], dim=1
    )  # a never-varying feature is ignored
    assert_close(
        torch.tensor(hessian_condition(with_blank)),
        torch.tensor(4.0),
        ulps=16,
        what="κ, blank feature",
    )


def test_preprocessing_check():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(200, 5, generator=g, dtype=torch.float64)
    assert preprocessing_check(X).passed
    shifted = X * torch.tensor([1.0, 10.0, 100.0, 1.0, 1.0], dtype=torch.float64) + 20.0
    check = preprocessing_check(shifted)
    assert not check.passed and check.measured > 1e3 * check.reference


def test_overfit_batch_errors():
    with pytest.raises(ValueError, match="steps must be at least 1"):
        overfit_batch(lambda X, y: 0.0, torch.zeros(1, 2), torch.zeros(1), steps=0)
