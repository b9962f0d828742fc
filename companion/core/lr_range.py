r"""The learning-rate range test (Smith, "Cyclical Learning Rates"): train briefly while the learning
rate grows geometrically, and read a good rate off the loss curve.

Over :math:`K` steps the rate runs from :math:`\eta_{\min}` to :math:`\eta_{\max}`,

.. math::
    \eta_k = \eta_{\min} \Bigl(\frac{\eta_{\max}}{\eta_{\min}}\Bigr)^{k/(K-1)}, \qquad k = 0, \dots, K-1,

stepped by ``companion.optim.lr_scheduler.ExponentialLR`` after every batch. The loss is smoothed
with a bias-corrected exponential average, :math:`\bar\ell_k = (\beta \bar s_{k-1} + (1-\beta)\ell_k)/(1-\beta^{k+1})`,
and the test stops early once :math:`\bar\ell_k` exceeds ``diverge`` times its minimum. The rate where
the smoothed loss falls fastest (per unit of :math:`\log\eta`), or a tenth of the rate at its
minimum, is a good constant rate or peak of a schedule. Used by the schedules and debugging chapters.
"""

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from companion.core.data import Split, batches
from companion.optim.lr_scheduler import ExponentialLR


@dataclass
class RangeTest:
    """The rates tried, the raw and smoothed losses (one per step), and two read-offs."""

    lrs: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def _best(self) -> int:
        """The index of the smallest finite smoothed loss (a diverged last entry may be inf or NaN)."""
        finite = [k for k, v in enumerate(self.losses) if math.isfinite(v)]
        if not finite:
            raise ValueError("the range test recorded no finite loss")
        return min(finite, key=self.losses.__getitem__)

    def minimum(self) -> float:
        """The rate at the smallest smoothed loss."""
        return self.lrs[self._best()]

    def steepest(self) -> float:
        """The rate, before the minimum, where the smoothed loss falls fastest per unit of log-rate."""
        end = self._best()
        if end < 2:
            return self.lrs[0]
        # central differences d ℓ̄ / d log η at k = 1 .. end − 1
        slopes = [
            (self.losses[k + 1] - self.losses[k - 1])
            / math.log(self.lrs[k + 1] / self.lrs[k - 1])
            for k in range(1, end)
        ]
        return self.lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]


def lr_range_test(
    model: nn.Module,
    make_optimizer: Callable,
    data: Split,
    lr_min: float = 1e-4,
    lr_max: float = 10.0,
    steps: int = 100,
    batch_size: int = 64,
    loss_fn: Callable = F.cross_entropy,
    beta: float = 0.9,
    diverge: float = 4.0,
    generator: torch.Generator | None = None,
) -> RangeTest:
    """Run the range test on a copy of ``model`` (the model itself is left untouched).

    ``make_optimizer(params, lr)`` builds the optimizer, e.g. ``lambda p, lr: SGD(p, lr=lr, momentum=0.9)``.
    Batches cycle through ``data`` (reshuffled with ``generator`` each pass) until ``steps`` steps or divergence.
    """
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got {lr_min} and {lr_max}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    model = copy.deepcopy(model).train()
    optimizer = make_optimizer(model.parameters(), lr_min)
    # γ = (η_max/η_min)^{1/(K−1)}: K − 1 steps from η_min to η_max
    scheduler = ExponentialLR(optimizer, gamma=(lr_max / lr_min) ** (1 / (steps - 1)))
    result, avg, best = RangeTest(), 0.0, math.inf

    def endless():
        while True:
            yield from batches(data, batch_size, shuffle=True, generator=generator)

    for k, (X, y) in zip(range(steps), endless()):
        loss = loss_fn(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = loss.item()
        # s_k = β s_{k−1} + (1 − β) ℓ_k,   ℓ̄_k = s_k / (1 − β^{k+1})
        avg = beta * avg + (1 - beta) * value
        smooth = avg / (1 - beta ** (k + 1))
        result.lrs.append(scheduler.get_last_lr()[0])
        result.raw.append(value)
        result.losses.append(smooth)
        best = min(best, smooth)
        if not math.isfinite(smooth) or smooth > diverge * best:
            break
        scheduler.step()
    return result
