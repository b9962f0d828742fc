r"""Warmup for Adam, measured: the variance of Adam's adaptive rate on random gradients, the warmup
factors of RAdam and of the untuned rules of thumb, and a step-counted training loop whose scheduler
steps after every batch. Used by chapter 8.1 (``book/after_adam/radam.ipynb``).

The adaptive rate of Adam at step t is :math:`\psi_t = 1/\sqrt{\hat v_t}` with
:math:`\hat v_t = v_t / (1 - \beta_2^t)`; Liu et al. (2020) study its variance over the draws of the
gradients, and RAdam's rectifier :math:`r_t` is the square root of the ratio of its long-run variance to
its variance at step t.
"""

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.core.data import Split
from companion.core.device import make_generator
from companion.core.train import evaluate, minibatch_steps
from companion.optim.lr_scheduler import LambdaLR, LinearLR
from companion.optim.radam import rectifier, sma_length


def adaptive_rate_variance(
    beta2: float, steps: int, runs: int, mean: float = 0.0, seed: int = 0
) -> Tensor:
    r"""The variance over ``runs`` independent runs of Adam's adaptive rate :math:`\psi_t = \sqrt{(1 - \beta_2^t)/v_t}`
    at each step t = 1 ... ``steps`` (float64, shape ``(steps,)``), for gradients drawn i.i.d. from
    :math:`\mathcal N(\text{mean}, 1)`. Memory is O(runs): the gradients are drawn step by step."""
    gen = make_generator(seed)
    v = torch.zeros(runs, dtype=torch.float64)
    variance = torch.empty(steps, dtype=torch.float64)
    for t in range(1, steps + 1):
        g = mean + torch.randn(runs, generator=gen, dtype=torch.float64)
        # v_t = β₂ v_{t−1} + (1 − β₂) g_t²
        v.mul_(beta2).add_(g * g, alpha=1 - beta2)
        # ψ_t = 1/√v̂_t = √((1 − β₂ᵗ) / v_t)
        psi = ((1 - beta2**t) / v).sqrt()
        variance[t - 1] = psi.var()
    return variance


def first_order_variance(rho: Tensor | float, sigma: float = 1.0):
    r"""Liu et al.'s first-order approximation :math:`\mathrm{Var}[\psi] \approx \rho / (2(\rho - 2)(\rho - 4)\sigma^2)`
    (meaningful for ρ > 4)."""
    return rho / (2 * (rho - 2) * (rho - 4) * sigma**2)


def sma_lengths(beta2: float, steps: int) -> tuple[float, Tensor]:
    """ρ_∞ and ρ_t for t = 1 ... ``steps`` (float64), from :func:`companion.optim.radam.sma_length`."""
    rho = [sma_length(t, beta2)[1] for t in range(1, steps + 1)]
    return sma_length(1, beta2)[0], torch.tensor(rho, dtype=torch.float64)


def radam_factor(beta2: float, steps: int, threshold: float = 5.0) -> Tensor:
    """RAdam's rectifier r_t at t = 1 ... ``steps``, 0 where ρ_t ≤ ``threshold`` (no adaptive step yet)."""
    rho_inf, rho = sma_lengths(beta2, steps)
    return torch.tensor(
        [rectifier(r, rho_inf) if r > threshold else 0.0 for r in rho.tolist()],
        dtype=torch.float64,
    )


def linear_warmup_factor(period: int, steps: int) -> Tensor:
    r"""The linear warmup :math:`\omega_t = \min(1, t/\tau)` at t = 1 ... ``steps``; Ma and Yarats's rule of
    thumb is :math:`\tau = 2/(1 - \beta_2)`."""
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    return (t / period).clamp(max=1.0)


def exponential_warmup_factor(beta2: float, steps: int) -> Tensor:
    r"""The untuned exponential warmup :math:`\omega_t = 1 - e^{-(1 - \beta_2) t}` at t = 1 ... ``steps``."""
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    return 1 - torch.exp(-(1 - beta2) * t)


def steps_given_up(factor: Tensor) -> float:
    r""":math:`\sum_t (1 - \omega_t)`: how many full-rate steps a warmup factor ω costs."""
    return (1 - factor).sum().item()


def linear_warmup(optimizer: torch.optim.Optimizer, period: int) -> LinearLR:
    """A per-step scheduler giving the rate ``lr · t/period`` at step t = 1 ... period, then ``lr``
    (``LinearLR`` from 1/period to 1 over period − 1 steps)."""
    return LinearLR(
        optimizer, start_factor=1 / period, end_factor=1.0, total_iters=period - 1
    )


def exponential_warmup(optimizer: torch.optim.Optimizer, beta2: float) -> LambdaLR:
    """A per-step scheduler giving the rate ``lr · (1 − exp(−(1 − β₂) t))`` at step t = 1, 2, ..."""
    return LambdaLR(optimizer, lambda k: 1 - math.exp(-(1 - beta2) * (k + 1)))


@dataclass
class StepRun:
    """One training run counted in optimizer steps: every batch loss, the root-mean-square change of the
    parameters at each of the first recorded steps, and the final losses and accuracies."""

    batch_loss: list[float] = field(default_factory=list)
    update_rms: list[float] = field(default_factory=list)
    train_loss: float = math.nan
    train_acc: float = math.nan
    val_loss: float = math.nan
    val_acc: float = math.nan


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Split,
    val: Split,
    steps: int,
    batch_size: int = 64,
    scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
    generator: torch.Generator | None = None,
    loss_fn: Callable = F.cross_entropy,
    record_updates: int = 0,
) -> StepRun:
    """Train for exactly ``steps`` mini-batch steps (epochs follow one another), stepping the scheduler
    built by ``scheduler(optimizer)`` after every optimizer step, as a warmup needs; then evaluate.
    The first ``record_updates`` steps also record the RMS of θ_t − θ_{t−1} over all parameters."""
    sched = scheduler(optimizer) if scheduler is not None else None
    run = StepRun()
    flat = lambda: torch.cat([p.detach().reshape(-1) for p in model.parameters()])  # noqa: E731
    before = flat() if record_updates else None
    while len(run.batch_loss) < steps:
        for loss in minibatch_steps(
            model, optimizer, train, batch_size, loss_fn, generator
        ):
            run.batch_loss.append(loss.item())
            if len(run.batch_loss) <= record_updates:
                after = flat()
                # √(mean (θ_t − θ_{t−1})²)
                run.update_rms.append((after - before).pow(2).mean().sqrt().item())
                before = after
            if sched is not None:
                sched.step()
            if len(run.batch_loss) == steps:
                break
    run.train_loss, run.train_acc = evaluate(model, train, loss_fn)
    run.val_loss, run.val_acc = evaluate(model, val, loss_fn)
    return run
