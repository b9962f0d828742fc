r"""Checks for a training run, each a measurement that passes on a healthy run and flags a broken one.

The checklist: the initial loss of a classifier is :math:`\log C` (:func:`initial_loss`); the training
step can drive one batch to almost zero loss (:func:`overfit_batch`); the gradients match finite
differences (:func:`gradient_check`); the learning rate lies below where the loss stops falling in a
range test (:func:`companion.core.lr_range.lr_range_test`, read by :func:`learning_rate_check`); few hidden units are dead or
saturated (:func:`unit_activity`); the inputs are standardized, which shrinks the condition number
of the loss (:func:`preprocessing_check`). Every check returns a :class:`Check`.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.core.diagnostics import dead_fraction, hidden_preactivations
from companion.core.lr_range import RangeTest
from companion.core.device import make_generator


@dataclass(frozen=True)
class Check:
    """The outcome of one check: what was measured, against what, and whether it passed."""

    name: str
    passed: bool
    measured: float
    reference: float
    message: str
    details: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{'ok  ' if self.passed else 'FLAG'} {self.name}: {self.message}"


@torch.no_grad()
def initial_loss(model: nn.Module, X: Tensor, y: Tensor, rtol: float = 0.1) -> Check:
    r"""The loss of a freshly initialized classifier against :math:`\log C` (C = the number of outputs).

    Small initial logits make the softmax nearly uniform, :math:`p_c \approx 1/C`, so the cross-entropy
    is :math:`-\log(1/C) = \log C`. Passes when :math:`|L_0 - \log C| \le` ``rtol`` :math:`\cdot \log C`.
    """
    was_training = model.training
    model.eval()
    logits = model(X)
    model.train(was_training)
    # L₀ = mean cross-entropy; log C = the loss of the uniform prediction
    loss, expected = F.cross_entropy(logits, y).item(), math.log(logits.shape[-1])
    passed = abs(loss - expected) <= rtol * expected
    return Check(
        "initial loss",
        passed,
        loss,
        expected,
        f"{loss:.3f} against log C = {expected:.3f}",
    )


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable = F.cross_entropy,
):
    """A correct training step ``step(X, y) -> loss``: zero the gradients, backward, step."""

    def step(X: Tensor, y: Tensor) -> float:
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def overfit_batch(
    step: Callable[[Tensor, Tensor], float],
    X: Tensor,
    y: Tensor,
    steps: int = 200,
    target: float = 0.05,
    window: int = 20,
) -> Check:
    """Call the training ``step(X, y)`` ``steps`` times on one small batch; a network with enough
    capacity and a working step fits it, so the loss must *stay* below ``target``: every one of the
    last ``window`` losses finite and at most ``target`` (a diverging step can touch 0 on its way)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    losses = [float(step(X, y)) for _ in range(steps)]
    last = losses[-min(window, steps) :]
    # the worst of the last ``window`` losses (nan and inf count as worst)
    worst = max(last, key=lambda v: v if math.isfinite(v) else math.inf)
    passed = all(math.isfinite(v) for v in last) and worst <= target
    return Check(
        "overfit one batch",
        passed,
        worst,
        target,
        f"loss {losses[0]:.3f} → {losses[-1]:.3g} after {steps} steps, at most {worst:.3g} over the last "
        f"{len(last)} (target ≤ {target})",
        {"losses": losses},
    )


@torch.no_grad()
def central_difference(
    f: Callable[[], Tensor], flat: Tensor, i: int, h: float = 1e-6
) -> float:
    r"""The partial derivative of the scalar ``f()`` along entry ``i`` of ``flat`` (a flat view of a
    parameter), by central differences :math:`(f(\theta + h e_i) - f(\theta - h e_i)) / 2h`; the entry is
    nudged in place and restored."""
    old = flat[i].item()
    flat[i] = old + h
    f_plus = f().item()
    flat[i] = old - h
    f_minus = f().item()
    flat[i] = old
    # (f(θ + h eᵢ) − f(θ − h eᵢ)) / 2h
    return (f_plus - f_minus) / (2 * h)


def gradient_check(
    loss_fn: Callable[[], Tensor],
    params: Sequence[Tensor],
    grads: Sequence[Tensor] | None = None,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    entries: int = 50,
    seed: int = 0,
) -> Check:
    r"""Gradients against central finite differences, in float64:

    .. math::
        \frac{\partial L}{\partial \theta_i} \approx \frac{L(\theta + \epsilon e_i) - L(\theta - \epsilon e_i)}{2\epsilon}
        \quad (\text{error } O(\epsilon^2) + O(\varepsilon_{\text{mach}} |L| / \epsilon)).

    ``grads`` are the gradients to check (e.g. the ``.grad`` a training loop left); by default autograd's
    gradient of ``loss_fn()``. Checks ``entries`` random entries of each parameter; passes when
    :math:`\max_i |g_i - \hat g_i| \le` ``rtol`` :math:`\cdot \max_i |\hat g_i|`. ``loss_fn`` must be
    deterministic (no dropout) and the parameters float64 (in float32 the rounding error
    :math:`\varepsilon_{\text{mach}}/\epsilon` swamps the test).
    """
    params = list(params)
    if any(p.dtype != torch.float64 for p in params):
        raise ValueError(
            "gradient_check needs float64 parameters (call model.double())"
        )
    if grads is None:
        grads = torch.autograd.grad(loss_fn(), params)
    g = make_generator(seed)
    ours, numeric = [], []
    with torch.no_grad():
        for p, grad in zip(params, grads):
            flat = p.view(-1)
            for i in torch.randperm(flat.numel(), generator=g)[:entries].tolist():
                numeric.append(central_difference(loss_fn, flat, i, eps))
                ours.append(grad.reshape(-1)[i].item())
    error = max(abs(a - b) for a, b in zip(ours, numeric))
    scale = max(abs(b) for b in numeric) or 1.0
    passed = error <= rtol * scale
    return Check(
        "gradients vs finite differences",
        passed,
        error / scale,
        rtol,
        f"largest difference {error / scale:.1e} of the largest gradient entry ({len(ours)} entries)",
        {"analytic": ours, "numeric": numeric},
    )


def learning_rate_check(result: RangeTest, lr: float, fall: float = 0.5) -> Check:
    """Read a range test (:func:`companion.core.lr_range.lr_range_test`): passes when its smoothed loss
    fell below ``fall`` × its start (some rate makes progress) and ``lr`` is at most the rate of the
    lowest loss (larger rates make the loss stop falling, then diverge)."""
    finite = [v for v in result.losses if math.isfinite(v)]
    if not finite:
        raise ValueError("the range test recorded no finite loss")
    start, low, best_lr = finite[0], min(finite), result.minimum()
    fell = low <= fall * start
    passed = fell and lr <= best_lr
    why = (
        "the loss never fell"
        if not fell
        else f"lr {lr:.3g} is {'≤' if lr <= best_lr else '>'} {best_lr:.3g}, the rate of the lowest loss"
    )
    return Check(
        "learning-rate range test",
        passed,
        lr,
        best_lr,
        f"loss {start:.3f} → lowest {low:.3f}; {why}",
        {"start_loss": start, "min_loss": low},
    )


@torch.no_grad()
def unit_activity(
    model: nn.Module,
    X: Tensor,
    threshold: float = 3.0,
    share: float = 0.5,
    max_dead: float = 0.5,
    max_saturated: float | None = None,
) -> Check:
    r"""Dead and saturated hidden units on ``X``, per hidden linear layer. Dead: the pre-activation
    :math:`z \le 0` on every row (a ReLU passes no gradient; :func:`companion.core.diagnostics.dead_fraction`).
    Saturated: :math:`|z| >` ``threshold`` on at least ``share`` of the rows (tanh'(3) < 0.01; for tanh
    and sigmoid networks; checked only when ``max_saturated`` is given). Non-finite values fail."""
    dead = dead_fraction(model, X)
    zs = hidden_preactivations(model, X)
    # saturated: |z| > threshold on at least ``share`` of the rows
    saturated = [
        ((z.abs() > threshold).float().mean(dim=0) >= share).float().mean().item()
        for z in zs
    ]
    finite = [bool(torch.isfinite(z).all()) for z in zs]
    worst = max(dead)
    passed = (
        all(finite)
        and worst <= max_dead
        and (max_saturated is None or max(saturated) <= max_saturated)
    )
    message = f"dead {[f'{d:.0%}' for d in dead]}, saturated {[f'{s:.0%}' for s in saturated]}"
    if not all(finite):
        message += ", non-finite pre-activations"
    return Check(
        "dead and saturated units",
        passed,
        worst,
        max_dead,
        message,
        {"dead": dead, "saturated": saturated, "finite": all(finite)},
    )


def standardize(
    X: Tensor, mean: Tensor | None = None, std: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    r""":math:`(x - \mu) / \sigma` per feature, with :math:`\mu, \sigma` from ``X`` unless given (pass the
    training set's to the validation set); constant features get :math:`\sigma = 1`. Returns
    ``(X_std, mean, std)``."""
    mean = X.mean(dim=0) if mean is None else mean
    std = X.std(dim=0) if std is None else std
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (X - mean) / std, mean, std


def hessian_condition(X: Tensor, bias: bool = True) -> float:
    r"""The condition number of the Hessian of linear least squares on ``X``,
    :math:`H = Z^\top Z / n` with :math:`Z = [X, \mathbf 1]`: :math:`\kappa = \lambda_{\max} / \lambda_{\min}`
    over the non-zero eigenvalues (directions in which the data never varies have zero gradient too).
    Gradient descent needs about :math:`\kappa` steps per digit of accuracy."""
    Z = X.detach().to(torch.float64).reshape(len(X), -1)
    if bias:
        Z = torch.cat([Z, torch.ones(len(Z), 1, dtype=Z.dtype, device=Z.device)], dim=1)
    # H = Zᵀ Z / n, eigenvalues in float64
    eigenvalues = torch.linalg.eigvalsh(Z.T @ Z / len(Z))
    kept = eigenvalues[
        eigenvalues > eigenvalues.max() * Z.shape[1] * torch.finfo(Z.dtype).eps
    ]
    return (kept.max() / kept.min()).item()


def preprocessing_check(X: Tensor, max_gain: float = 10.0) -> Check:
    """Passes when standardizing ``X`` would lower the condition number of the least-squares Hessian
    (:func:`hessian_condition`) by at most ``max_gain``, i.e. the inputs are already well scaled."""
    kappa, kappa_std = hessian_condition(X), hessian_condition(standardize(X)[0])
    return Check(
        "input preprocessing",
        kappa <= max_gain * kappa_std,
        kappa,
        kappa_std,
        f"condition number {kappa:.3g}, {kappa_std:.3g} after standardizing (×{kappa / kappa_std:.3g})",
    )


__all__ = [
    "Check",
    "initial_loss",
    "train_step",
    "overfit_batch",
    "gradient_check",
    "learning_rate_check",
    "unit_activity",
    "standardize",
    "hessian_condition",
    "preprocessing_check",
]
