r"""Averaging the iterates of SGD: Polyak–Ruppert on a noisy quadratic, SWA and EMA on the noisy testbed.

Used by chapter 8.5 (``book/after_adam/averaging.ipynb``).

:func:`polyak_ruppert` runs SGD with steps :math:`\eta_t = \eta\, t^{-\alpha}` on the quadratic
:math:`f(x) = \tfrac12 \sum_i \lambda_i x_i^2` (minimum at :math:`x^* = 0`) from gradients with Gaussian
noise, many independent runs at once, and keeps the equal average of the iterates with the package's
:func:`companion.optim.swa_utils.get_swa_multi_avg_fn`. Polyak and Juditsky's theorem predicts, for steps
that decrease more slowly than 1/t (and, on a quadratic, for a small constant step too),

.. math::
    t\; \mathbb{E}\,\lVert \bar x_t - x^* \rVert^2 \;\to\; \operatorname{tr}(H^{-1} S H^{-1}) = \sigma^2 \sum_i \lambda_i^{-2}

(:func:`predicted_average_error`), the best constant any estimator built from the t noisy gradients can reach.

:func:`train_with_averages` trains the regularization part's testbed model once and keeps, beside the last
iterate, the SWA average of its epoch-end weights and exponential moving averages of its weights after every
step (:class:`companion.optim.swa_utils.AveragedModel`); with ``swa_lr`` the learning rate is annealed to
that value by :class:`companion.optim.swa_utils.SWALR` when averaging starts, as in SWA.
"""

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from companion.core.checks import check
from companion.core.data import Digits
from companion.core.device import make_generator
from companion.core.train import evaluate, minibatch_steps
from companion.experiments.testbed import (
    BATCH_SIZE,
    EPOCHS,
    LR,
    MOMENTUM,
    testbed_model,
)
from companion.optim.sgd import SGD
from companion.optim.swa_utils import (
    SWALR,
    AveragedModel,
    get_ema_multi_avg_fn,
    get_swa_multi_avg_fn,
)


@dataclass(frozen=True)
class AveragingRun:
    """Mean squared distance to the minimum over the runs, at the recorded steps ``t``: the last iterate's and the average's."""

    t: Tensor
    last: Tensor
    average: Tensor


def record_steps(steps: int, points: int = 40, first: int = 10) -> list[int]:
    """About ``points`` steps log-spaced from ``first`` to ``steps`` (distinct integers, ``steps`` included)."""
    ratio = math.log(steps / first) / (points - 1)
    return sorted({round(first * math.exp(ratio * k)) for k in range(points)} | {steps})


@torch.no_grad()
def polyak_ruppert(
    eigenvalues: Tensor,
    steps: int,
    lr: float,
    alpha: float = 0.0,
    noise_std: float = 1.0,
    runs: int = 100,
    seed: int = 0,
    start: float = 1.0,
    chunk: int = 1000,
) -> AveragingRun:
    r"""SGD on :math:`f(x) = \tfrac12 \sum_i \lambda_i x_i^2` with noisy gradients, and its running average, for ``runs``
    independent runs (the rows of x) started at :math:`x_0 = (\text{start}, \dots)`:

    .. math::
        x_t = x_{t-1} - \eta\, t^{-\alpha} \bigl(\Lambda x_{t-1} + \sigma \xi_t\bigr), \qquad
        \bar x_t = \bar x_{t-1} + \frac{x_t - \bar x_{t-1}}{t} \quad (\bar x_1 = x_1),

    with :math:`\xi_t` standard normal, drawn ``chunk`` steps at a time from a generator seeded with ``seed``
    on the CPU. ``alpha = 0`` is a constant step. Returns the mean over runs of :math:`\lVert x_t\rVert^2` and
    :math:`\lVert \bar x_t\rVert^2` at the steps of :func:`record_steps`.
    """
    lam = eigenvalues
    g = make_generator(seed)
    x = torch.full((runs, len(lam)), float(start), dtype=lam.dtype, device=lam.device)
    average = x.clone()
    fold = get_swa_multi_avg_fn()
    wanted = record_steps(steps)
    last, avg = [], []
    for t in range(1, steps + 1):
        if (t - 1) % chunk == 0:
            noise = torch.randn(
                min(chunk, steps - t + 1), *x.shape, generator=g, dtype=x.dtype
            ).to(x.device)
        # x_t = x_{t−1} − η t^{−α} (Λ x_{t−1} + σ ξ_t)
        x = x - lr * t**-alpha * (lam * x + noise_std * noise[(t - 1) % chunk])
        if t == 1:
            average.copy_(x)  # x̄_1 = x_1
        else:
            fold([average], [x], t - 1)  # x̄_t = x̄_{t−1} + (x_t − x̄_{t−1}) / t
        if t == wanted[len(last)]:
            last.append((x * x).sum(1).mean())
            avg.append((average * average).sum(1).mean())
    return AveragingRun(
        torch.tensor(wanted), torch.stack(last).cpu(), torch.stack(avg).cpu()
    )


def predicted_average_error(eigenvalues: Tensor, noise_std: float, t) -> Tensor:
    r"""Polyak and Juditsky's asymptotic error of the average, :math:`\sigma^2 \operatorname{tr}(H^{-2}) / t` (noise
    covariance :math:`\sigma^2 I`), at the steps ``t``."""
    return (
        noise_std**2
        * (1 / eigenvalues.double().cpu() ** 2).sum()
        / torch.as_tensor(t, dtype=torch.float64)
    )


@dataclass(frozen=True)
class Scores:
    """A model's accuracy and loss on each split, measured in eval mode."""

    train_acc: float
    train_loss: float
    val_acc: float
    val_loss: float
    test_acc: float


def scores(model: nn.Module, data: Digits) -> Scores:
    """:func:`companion.core.train.evaluate` on the three splits."""
    train_loss, train_acc = evaluate(model, data.train)
    val_loss, val_acc = evaluate(model, data.val)
    _, test_acc = evaluate(model, data.test)
    return Scores(train_acc, train_loss, val_acc, val_loss, test_acc)


def train_with_averages(
    data: Digits,
    seed: int = 0,
    swa_start: int = 30,
    ema_decays: Sequence[float] = (0.99,),
    swa_lr: float | None = None,
    anneal_epochs: int = 5,
    epochs: int = EPOCHS,
    device=None,
) -> dict[str, Scores]:
    """Train the testbed model from ``seed`` (SGD, lr 0.05, momentum 0.9, batches of 32, batch order from
    ``seed``) and score, at the end: the last iterate (``"last"``), the equal average of the weights at the end
    of every epoch from ``swa_start`` on (``"SWA"``), and for each decay d the EMA of the weights after every
    step (``"EMA d"``). With ``swa_lr``, :class:`~companion.optim.swa_utils.SWALR` anneals the rate to it over
    ``anneal_epochs`` epochs from epoch ``swa_start`` on. The testbed MLP has no BatchNorm, so no ``update_bn``
    pass is needed."""
    check(
        0 <= swa_start < epochs,
        f"swa_start must be in [0, epochs), got {swa_start} with {epochs} epochs",
    )
    model = testbed_model(seed=seed, device=device or data.train.X.device)
    optimizer = SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    swa = AveragedModel(model)
    emas = {
        f"EMA {d:g}": AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d))
        for d in ema_decays
    }
    # built before training: its construction leaves the rate alone (α_0 = 0)
    scheduler = (
        SWALR(optimizer, swa_lr, anneal_epochs=anneal_epochs)
        if swa_lr is not None
        else None
    )
    generator = make_generator(seed)
    for epoch in range(epochs):
        for _ in minibatch_steps(
            model, optimizer, data.train, BATCH_SIZE, generator=generator
        ):
            for ema in emas.values():
                ema.update_parameters(model)
        if epoch >= swa_start:
            swa.update_parameters(model)
            if scheduler is not None:
                scheduler.step()
    return {
        "last": scores(model, data),
        "SWA": scores(swa, data),
        **{k: scores(m, data) for k, m in emas.items()},
    }
