r"""Schedules stepped after every batch that cycle the learning rate (and, inversely, the momentum):
cyclical learning rates (``CyclicLR``) and the one-cycle policy (``OneCycleLR``), both after Smith."""

import math
import types
from typing import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from companion.optim.lr_scheduler._base import (
    check_is_optimizer,
    per_group,
    set_group_value,
    set_momentum,
    warn_outside_step,
)

MOMENTUM_REQUIRED = (
    "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
)


def _momentum_kind(optimizer: Optimizer) -> bool:
    """True for Adam-like optimizers (cycle ``betas[0]``), False for ``momentum``; a ValueError for neither."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError(MOMENTUM_REQUIRED)
    return "betas" in optimizer.defaults


class CyclicLR(LRScheduler):
    r"""Cyclical learning rates (Smith, 2017), like ``torch.optim.lr_scheduler.CyclicLR``; step it after every batch.

    Closed form. With cycle length :math:`L = s_{up} + s_{down}`, up-fraction :math:`r = s_{up}/L`,
    cycle number :math:`c = \lfloor 1 + t/L \rfloor` and position :math:`x = 1 + t/L - c \in [0, 1)`:

    .. math::
        h(x) &= \begin{cases} x / r & x \le r \\ (x - 1)/(r - 1) & x > r \end{cases} \\
        \eta_t &= \eta_{\text{base}} + (\eta_{\max} - \eta_{\text{base}})\, h(x)\, \sigma \\
        \mu_t &= \mu_{\max} - (\mu_{\max} - \mu_{\text{base}})\, h(x)\, \sigma

    where the amplitude scale σ is 1 (``triangular``), :math:`2^{1-c}` (``triangular2``),
    :math:`\gamma^t` (``exp_range``) or ``scale_fn`` of :math:`c` or :math:`t` (``scale_mode``).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        base_lr: float | list[float],
        max_lr: float | list[float],
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float = 0.8,
        max_momentum: float = 0.9,
        last_epoch: int = -1,
    ) -> None:
        check_is_optimizer(optimizer)
        self.optimizer = optimizer
        base_lrs = per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                set_group_value(group, "lr", lr)
        self.max_lrs = per_group("max_lr", optimizer, max_lr)
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_kind(optimizer)
            self.base_momentums = per_group("base_momentum", optimizer, base_momentum)
            self.max_momentums = per_group("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                for mu_max, mu_base, group in zip(
                    self.max_momentums, self.base_momentums, optimizer.param_groups
                ):
                    set_momentum(group, mu_max, self.use_beta1)
                    group["max_momentum"] = mu_max
                    group["base_momentum"] = mu_base
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        """The built-in modes fix what σ is a function of: the cycle, or the iteration for ``exp_range``."""
        if self._scale_fn_custom is None and self.mode in ("triangular", "triangular2"):
            self.scale_mode = "cycle"
        elif self._scale_fn_custom is None and self.mode == "exp_range":
            self.scale_mode = "iterations"

    def scale_fn(self, x: float) -> float:
        """The amplitude scale σ: ``scale_fn`` if given, else the mode's."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            # σ = 2^{1−c}
            return 1 / (2.0 ** (x - 1))
        # σ = γ^t
        return self.gamma**x

    def get_lr(self) -> list:
        warn_outside_step(self)
        t, L, r = self.last_epoch, self.total_size, self.step_ratio
        # c = ⌊1 + t/L⌋,  x = 1 + t/L − c
        cycle = math.floor(1 + t / L)
        x = 1.0 + t / L - cycle
        # h(x): rising x/r, then falling (x − 1)/(r − 1)
        h = x / r if x <= r else (x - 1) / (r - 1)
        sigma = self.scale_fn(cycle if self.scale_mode == "cycle" else t)
        # η_t = η_base + (η_max − η_base) h σ
        lrs = [
            lo + (hi - lo) * h * sigma for lo, hi in zip(self.base_lrs, self.max_lrs)
        ]
        if self.cycle_momentum:
            for mu_lo, mu_hi, group in zip(
                self.base_momentums, self.max_momentums, self.optimizer.param_groups
            ):
                # μ_t = μ_max − (μ_max − μ_base) h σ
                set_momentum(group, mu_hi - (mu_hi - mu_lo) * h * sigma, self.use_beta1)
        return lrs

    def state_dict(self) -> dict:
        state = super().state_dict()
        fn = state.pop("_scale_fn_custom")
        # a plain function cannot be saved; a callable object keeps its attributes
        state["_scale_fn_custom"] = (
            None
            if fn is None or isinstance(fn, types.FunctionType)
            else fn.__dict__.copy()
        )
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        saved_fn = state_dict.get("_scale_fn_custom")
        self.__dict__.update(
            {
                k: v
                for k, v in state_dict.items()
                if k not in ("_scale_fn_custom", "_scale_fn_ref")
            }
        )
        if saved_fn is not None:
            self._scale_fn_custom.__dict__.update(saved_fn)
        self._init_scale_fn()
