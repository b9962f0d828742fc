r"""The one-cycle policy (Smith & Topin, "Super-Convergence"): warm up to a large learning rate, then
anneal far below the start, with the momentum cycled the other way."""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from companion.optim.lr_scheduler._base import (
    check_is_optimizer,
    per_group,
    set_momentum,
    warn_outside_step,
)
from companion.optim.lr_scheduler.cyclic import _momentum_kind


def anneal_cos(start: float, end: float, pct: float) -> float:
    r"""Cosine from ``start`` (pct = 0) to ``end`` (pct = 1): :math:`e + \tfrac12 (s - e)(1 + \cos \pi p)`."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def anneal_linear(start: float, end: float, pct: float) -> float:
    r"""Straight line from ``start`` to ``end``: :math:`s + (e - s) p`."""
    return (end - start) * pct + start


def _phase(end_step, start_lr, end_lr, start_momentum, end_momentum) -> dict:
    """One phase: up to ``end_step``, from the group's ``start_lr`` key to its ``end_lr`` key (names, not values)."""
    return {
        "end_step": end_step,
        "start_lr": start_lr,
        "end_lr": end_lr,
        "start_momentum": start_momentum,
        "end_momentum": end_momentum,
    }


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy, like ``torch.optim.lr_scheduler.OneCycleLR``; step it after every batch.

    Closed form. With :math:`N` total steps, :math:`\eta_{\text{init}} = \eta_{\max}/d`,
    :math:`\eta_{\min} = \eta_{\text{init}}/d_{\text{final}}` and the anneal
    :math:`a(s, e, p) = e + \tfrac12(s - e)(1 + \cos\pi p)` (or :math:`s + (e - s)p`), two phases
    (the default, as fastai) split at :math:`t_1 = pN - 1`:

    .. math::
        \eta_t = \begin{cases} a(\eta_{\text{init}}, \eta_{\max}, t / t_1) & t \le t_1 \\
        a(\eta_{\max}, \eta_{\min}, (t - t_1)/(N - 1 - t_1)) & t > t_1 \end{cases}

    and the momentum runs :math:`\mu_{\max} \to \mu_{\text{base}} \to \mu_{\max}` alongside. With
    ``three_phase=True`` (Smith's paper) the rate returns to :math:`\eta_{\text{init}}` at
    :math:`2pN - 2` and a third phase anneals to :math:`\eta_{\min}`.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        check_is_optimizer(optimizer)
        self.optimizer = optimizer
        if total_steps is not None:
            if total_steps <= 0 or not isinstance(total_steps, int):
                raise ValueError(
                    f"Expected positive integer total_steps, but got {total_steps}"
                )
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(
                    f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}"
                )
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError(
                "You must define either total_steps OR (epochs AND steps_per_epoch)"
            )
        N, t1 = self.total_steps, float(pct_start * self.total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                _phase(t1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(
                    float(2 * pct_start * N) - 2,
                    "max_lr",
                    "initial_lr",
                    "base_momentum",
                    "max_momentum",
                ),
                _phase(N - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._schedule_phases = [
                _phase(t1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(N - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(
                f"Expected float between 0 and 1 pct_start, but got {pct_start}"
            )
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self._anneal_func_type = anneal_strategy
        max_lrs = per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for eta_max, group in zip(max_lrs, optimizer.param_groups):
                # η_init = η_max / d,  η_min = η_init / d_final
                group["initial_lr"] = eta_max / div_factor
                group["max_lr"] = eta_max
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_kind(optimizer)
            mu_maxs = per_group("max_momentum", optimizer, max_momentum)
            mu_bases = per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for mu_max, mu_base, group in zip(
                    mu_maxs, mu_bases, optimizer.param_groups
                ):
                    set_momentum(group, mu_max, self.use_beta1)
                    group["max_momentum"] = mu_max
                    group["base_momentum"] = mu_base
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(
                f"Tried to step {t} times. The specified number of total steps is {self.total_steps}"
            )
        anneal = anneal_cos if self._anneal_func_type == "cos" else anneal_linear
        # the phase holding t (the last one also takes t past its end)
        start = 0.0
        for i, phase in enumerate(self._schedule_phases):
            if t <= phase["end_step"] or i == len(self._schedule_phases) - 1:
                break
            start = phase["end_step"]
        # p = (t − start) / (end − start)
        pct = (t - start) / (phase["end_step"] - start)
        lrs = []
        for group in self.optimizer.param_groups:
            # η_t = a(η_start, η_end, p)
            lrs.append(anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
            if self.cycle_momentum:
                # μ_t = a(μ_start, μ_end, p)
                mu = anneal(
                    group[phase["start_momentum"]], group[phase["end_momentum"]], pct
                )
                set_momentum(group, mu, self.use_beta1)
        return lrs
