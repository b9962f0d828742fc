"""companion.regularization.penalties: the penalties against hand-computed values and torch's weight decay, the
soft-threshold against torch's softshrink, and proximal gradient descent against scikit-learn's lasso.

Tolerances: penalty values 1e-12 (relative), penalty gradients 2 ε·scale, trajectories (penalty + SGD vs
torch's weight_decay, penalty + Adam vs torch's Adam) 1e-12 over 30 float64 steps, soft-threshold 0
(bit-identical), proximal gradient vs the lasso solution 1e-12.
"""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.optim import SGD
from companion.regularization import (
    ProximalL1,
    check_lambda,
    elastic_net_penalty,
    l1_penalty,
    l1_proximal_step,
    l2_penalty,
    penalized_parameters,
    soft_threshold,
    sparsity,
)
from companion.testing.tolerances import assert_close

VALUE_TOL = 1e-12  # relative, penalty values against math.fsum
GRAD_ULPS = 2  # λ·sign(w), λ·w: one or two rounded products each
TRAJECTORY_TOL = 1e-12
LASSO_TOL = 1e-12


def _model(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(5, 8), nn.Tanh(), nn.LayerNorm(8), nn.Linear(8, 3)
    ).to(dtype)


def _values(model, include_bias):
    """Every penalized scalar as a Python float, selected by hand (weights = the two Linear matrices)."""
    tensors = [model[0].weight, model[3].weight]
    if include_bias:
        tensors = list(model.parameters())
    return [v for t in tensors for v in t.detach().flatten().tolist()]


def _hand(kind, values, lam, l1_ratio=0.5):
    l1 = math.fsum(abs(v) for v in values)
    l2 = math.fsum(v * v for v in values)
    return {
        "l1": lam * l1,
        "l2": lam / 2 * l2,
        "elastic": lam * (l1_ratio * l1 + (1 - l1_ratio) / 2 * l2),
    }[kind]


def _ours(kind, params, lam, include_bias=False, l1_ratio=0.5):
    if kind == "l1":
        return l1_penalty(params, lam, include_bias=include_bias)
    if kind == "l2":
        return l2_penalty(params, lam, include_bias=include_bias)
    return elastic_net_penalty(params, lam, l1_ratio, include_bias=include_bias)


VALUE_CASES = [
    (kind, lam, include_bias)
    for kind in ("l1", "l2", "elastic")
    for lam in (0.0, 1e-4, 0.3, 2.0)
    for include_bias in (False, True)
]


@pytest.mark.parametrize("kind,lam,include_bias", VALUE_CASES, ids=str)
def test_penalty_value_against_hand_computation(kind, lam, include_bias):
    model = _model()
    got = _ours(kind, model, lam, include_bias).item()
    want = _hand(kind, _values(model, include_bias), lam)
    assert abs(got - want) <= VALUE_TOL * max(abs(want), 1e-300), (got, want)


@pytest.mark.parametrize("l1_ratio", [0.0, 0.25, 0.5, 1.0])
def test_elastic_net_mixes_l1_and_l2(l1_ratio):
    model = _model()
    got = elastic_net_penalty(model, 0.7, l1_ratio).item()
    want = _hand("elastic", _values(model, False), 0.7, l1_ratio)
    assert abs(got - want) <= VALUE_TOL * abs(want)
    if l1_ratio == 1.0:
        assert abs(got - l1_penalty(model, 0.7).item()) <= VALUE_TOL * abs(got)
    if l1_ratio == 0.0:
        assert abs(got - l2_penalty(model, 0.7).item()) <= VALUE_TOL * abs(got)


def test_which_parameters_are_penalized():
    model = _model()
    weights = penalized_parameters(model)
    assert [w is p for w, p in zip(weights, (model[0].weight, model[3].weight))] == [
        True,
        True,
    ]
    assert (
        len(weights) == 2
    )  # biases and the LayerNorm scale and shift (1-D) are not penalized
    assert len(penalized_parameters(model, include_bias=True)) == len(
        list(model.parameters())
    )
    t = torch.randn(3)
    assert (
        penalized_parameters(t)[0] is t
    )  # a tensor or a list is taken as given, 1-D or not
    assert len(penalized_parameters([t, t])) == 2


@pytest.mark.parametrize("kind", ["l1", "l2", "elastic"])
def test_penalty_gradient(kind):
    """∇ λ‖w‖₁ = λ sign(w), ∇ λ/2 ‖w‖² = λ w, and the elastic net mixes them; biases get no gradient."""
    model, lam, a = _model(), 0.3, 0.5
    _ours(kind, model, lam, l1_ratio=a).backward()
    for layer in (model[0], model[3]):
        w = layer.weight.detach()
        want = {
            "l1": lam * w.sign(),
            "l2": lam * w,
            "elastic": lam * a * w.sign() + lam * (1 - a) * w,
        }[kind]
        assert_close(layer.weight.grad, want, ulps=GRAD_ULPS)
        assert layer.bias.grad is None


@pytest.mark.parametrize("kind", ["l2", "elastic"])
def test_gradcheck(kind):
    """The penalties are differentiated by autograd; gradcheck confirms it (L1 is smooth away from 0)."""
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda w: _ours(kind, [w], 0.7)
    assert torch.autograd.gradcheck(fn, (w,), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradgradcheck(fn, (w,), eps=1e-6, atol=1e-8)


def _train_penalized(opt_factory, penalty, steps=30, seed=0):
    """Float64 closed loop: each model computes its gradients from its own weights."""
    model = _model(seed)
    opt = opt_factory(model)
    gen = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(32, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    path = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model(X), y)
        if penalty is not None:
            loss = loss + penalty(model)
        loss.backward()
        opt.step()
        path.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return torch.stack(path)


SGD_CASES = [
    dict(lr=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
]


@pytest.mark.parametrize("options", SGD_CASES, ids=str)
@pytest.mark.parametrize("lam", [1e-3, 0.1])
def test_l2_penalty_is_sgd_weight_decay(options, lam):
    """loss + λ/2‖θ‖² (every parameter) with SGD follows torch.optim.SGD(weight_decay=λ) step for step."""
    ours = _train_penalized(
        lambda m: SGD(m.parameters(), **options),
        functools.partial(l2_penalty, lam=lam, include_bias=True),
    )
    theirs = _train_penalized(
        lambda m: torch.optim.SGD(m.parameters(), weight_decay=lam, **options), None
    )
    assert (ours - theirs).abs().max().item() < TRAJECTORY_TOL


def test_weights_only_penalty_is_weight_decay_on_a_weights_group():
    """Penalizing weights only equals torch's weight_decay set on a parameter group of the weights."""
    lam, options = 0.05, dict(lr=0.05, momentum=0.9)
    ours = _train_penalized(
        lambda m: SGD(m.parameters(), **options), functools.partial(l2_penalty, lam=lam)
    )

    def grouped(m):
        weights = [p for p in m.parameters() if p.dim() >= 2]
        others = [p for p in m.parameters() if p.dim() < 2]
        return torch.optim.SGD(
            [{"params": weights, "weight_decay": lam}, {"params": others}], **options
        )

    theirs = _train_penalized(grouped, None)
    # the parameter order in the flattened path is the model's, the same for both runs
    assert (ours - theirs).abs().max().item() < TRAJECTORY_TOL


def test_l2_penalty_is_adam_l2_but_not_adamw():
    """With Adam, the penalty equals torch's (coupled) Adam weight_decay, but not AdamW's decoupled decay."""
    lam = 0.1
    penalty = functools.partial(l2_penalty, lam=lam, include_bias=True)
    ours = _train_penalized(
        lambda m: torch.optim.Adam(m.parameters(), lr=1e-2), penalty
    )
    adam_l2 = _train_penalized(
        lambda m: torch.optim.Adam(m.parameters(), lr=1e-2, weight_decay=lam), None
    )
    adamw = _train_penalized(
        lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=lam), None
    )
    assert (ours - adam_l2).abs().max().item() < TRAJECTORY_TOL
    assert (ours - adamw).abs().max().item() > 1e-3


THRESHOLD_CASES = [0.0, 0.1, 0.5, 3.0]


@pytest.mark.parametrize("t", THRESHOLD_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_threshold_is_softshrink(t, dtype):
    x = torch.randn(200, dtype=dtype) * 2
    x[:5] = torch.tensor([0.0, t, -t, 2 * t, -2 * t], dtype=dtype)
    assert torch.equal(
        soft_threshold(x, t), F.softshrink(x, t)
    )  # tolerance 0: the same numbers


def test_soft_threshold_values_and_prox_property():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.0, 4.0], dtype=torch.float64)
    assert soft_threshold(x, 0.5).tolist() == [-1.5, 0.0, 0.0, 0.0, 0.5, 3.5]
    # S_t(x) minimizes ½(z − x)² + t|z|: no point of a fine grid does better (up to the grid spacing)
    z = torch.linspace(-5, 5, 100001, dtype=torch.float64)
    for xi in x:
        objective = lambda v: 0.5 * (v - xi) ** 2 + 0.5 * v.abs()
        assert objective(soft_threshold(xi, 0.5)) <= objective(z).min() + 1e-12


def test_soft_threshold_tensor_threshold_broadcasts():
    x = torch.tensor([[1.0, -1.0], [2.0, -3.0]])
    t = torch.tensor([0.5, 2.0])
    assert soft_threshold(x, t).tolist() == [[0.5, 0.0], [1.5, -1.0]]


def _lasso_problem(n=80, d=20, informative=5, seed=0):
    from companion.core.data import make_regression

    data, w_true = make_regression(
        n=n, d=d, noise=0.1, n_informative=informative, seed=seed, dtype=torch.float64
    )
    return data.X, data.y, w_true


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.5])
def test_proximal_gradient_solves_the_lasso(alpha):
    """ISTA (a gradient step on ½n⁻¹‖y − Xw‖², then the L1 prox) reaches scikit-learn's lasso solution,
    exact zeros included; the subgradient method reaches the same objective but no exact zeros."""
    from sklearn.linear_model import Lasso

    X, y, _ = _lasso_problem()
    lr = (
        1.0 / torch.linalg.eigvalsh(X.T @ X / len(X)).max().item()
    )  # 1 / Lipschitz constant
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    opt = ProximalL1(SGD([w], lr=lr), alpha, params=[w])
    for _ in range(300):
        opt.zero_grad()
        (0.5 * ((X @ w - y) ** 2).mean()).backward()
        opt.step()
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100000).fit(
        X.numpy(), y.numpy()
    )
    ref_w = torch.from_numpy(ref.coef_)
    assert (w.detach() - ref_w).abs().max().item() < LASSO_TOL
    assert torch.equal(w.detach() == 0, ref_w == 0)  # the same exact zeros
    assert (w.detach() == 0).sum().item() >= 5


def test_subgradient_lasso_has_no_exact_zeros():
    X, y, _ = _lasso_problem()
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    opt = SGD([w], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        (0.5 * ((X @ w - y) ** 2).mean() + l1_penalty([w], 0.1)).backward()
        opt.step()
    assert (w.detach() == 0).sum().item() == 0
    assert (
        sparsity([w], tol=0.05) >= 0.5
    )  # yet many weights hover near zero (within lr·λ = 0.01 ... 0.05)


def test_proximal_l1_wrapper_matches_a_manual_step_and_uses_group_lr():
    torch.manual_seed(0)
    model = _model()
    manual = _model()
    params = list(model.parameters())
    opt = ProximalL1(
        SGD([{"params": params[:2], "lr": 0.1}, {"params": params[2:]}], lr=0.3),
        lam=0.2,
    )
    ref_opt = SGD(
        [
            {"params": list(manual.parameters())[:2], "lr": 0.1},
            {"params": list(manual.parameters())[2:]},
        ],
        lr=0.3,
    )
    X = torch.randn(16, 5, dtype=torch.float64)
    for _ in range(5):
        for m, o in ((model, opt), (manual, ref_opt)):
            o.zero_grad()
            m(X).pow(2).mean().backward()
            o.step()
        l1_proximal_step([manual[0].weight], 0.2, 0.1)
        l1_proximal_step([manual[3].weight], 0.2, 0.3)
    assert (
        max(
            (a - b).abs().max().item()
            for a, b in zip(model.parameters(), manual.parameters())
        )
        == 0.0
    )
    assert opt.param_groups is opt.optimizer.param_groups
    assert opt.state_dict().keys() == opt.optimizer.state_dict().keys()


def test_sparsity():
    w = torch.tensor([[0.0, 1e-4], [-0.5, 0.0]])
    assert sparsity([w]) == 0.5
    assert sparsity([w], tol=1e-3) == 0.75


def test_reproducible_from_a_seed():
    runs = [
        _train_penalized(
            lambda m: SGD(m.parameters(), lr=0.05, momentum=0.9),
            functools.partial(elastic_net_penalty, lam=0.01),
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: l1_penalty(m, -0.1), "Invalid regularization strength lam: -0.1"),
        (lambda m: l2_penalty(m, -1e-9), "Invalid regularization strength lam"),
        (lambda m: elastic_net_penalty(m, -1.0), "Invalid regularization strength lam"),
        (
            lambda m: elastic_net_penalty(m, 0.1, l1_ratio=1.5),
            r"l1_ratio must be in \[0, 1\], got 1.5",
        ),
        (
            lambda m: elastic_net_penalty(m, 0.1, l1_ratio=-0.1),
            r"l1_ratio must be in \[0, 1\]",
        ),
        (
            lambda m: l2_penalty(m, torch.tensor([0.1, 0.2])),
            "1-element tensor, got shape \\(2,\\)",
        ),
        (lambda m: l2_penalty([], 0.1), "no parameters to penalize"),
        (
            lambda m: l2_penalty(nn.Sequential(nn.ReLU()), 0.1),
            "no parameters to penalize",
        ),
        (
            lambda m: soft_threshold(torch.ones(3, 2), -0.5),
            "Invalid regularization strength threshold",
        ),
        (
            lambda m: soft_threshold(torch.ones(3, 2), torch.ones(3)),
            r"does not broadcast to x's shape \(3, 2\)",
        ),
        (
            lambda m: soft_threshold(torch.ones(3), torch.ones(2, 3)),
            "does not broadcast",
        ),
        (
            lambda m: soft_threshold(torch.ones(3), torch.tensor([0.1, -0.1, 0.1])),
            "threshold must be >= 0",
        ),
        (
            lambda m: l1_proximal_step(m, -0.1, 0.1),
            "Invalid regularization strength lam",
        ),
        (
            lambda m: l1_proximal_step(m, 0.1, -0.1),
            "Invalid regularization strength lr",
        ),
        (
            lambda m: ProximalL1(SGD(m.parameters(), lr=0.1), -1.0),
            "Invalid regularization strength",
        ),
        (
            lambda m: ProximalL1(
                SGD(m[0].parameters(), lr=0.1), 0.1, params=[m[3].weight]
            ),
            "optimizer updates",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(_model())


def test_zero_strength_is_allowed():
    check_lambda(0.0)
    assert l1_penalty(_model(), 0.0).item() == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    model = _model(dtype=torch.float32)
    cpu = [_ours(k, model, 0.3).item() for k in ("l1", "l2", "elastic")]
    model = model.cuda()
    gpu = [_ours(k, model, 0.3).item() for k in ("l1", "l2", "elastic")]
    assert max(abs(a - b) / abs(a) for a, b in zip(cpu, gpu)) < 1e-5
    x = torch.randn(100, device="cuda")
    assert torch.equal(soft_threshold(x, 0.5).cpu(), F.softshrink(x.cpu(), 0.5))
