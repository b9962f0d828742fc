r"""Schedules that move the learning rate along a curve: constant or linear warmup (``ConstantLR``,
``LinearLR``), polynomial decay, and cosine annealing with and without warm restarts (SGDR)."""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from companion.optim.lr_scheduler._base import (
    group_values,
    set_group_value,
    warn_outside_step,
)


class ConstantLR(LRScheduler):
    r"""A constant factor for the first ``total_iters`` epochs, like ``torch.optim.lr_scheduler.ConstantLR``.

    .. math::
        \text{closed:}\ \eta_t = \eta_0 \begin{cases} c & t < T \\ 1 & t \ge T \end{cases}, \qquad
        \text{recursive:}\ \eta_0 \leftarrow c\,\eta_0, \quad \eta_T = \eta_{T-1} / c .
    """

    def __init__(
        self,
        optimizer: Optimizer,
        factor: float = 1.0 / 3,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if factor > 1.0 or factor < 0:
            raise ValueError(
                "Constant multiplicative factor expected to be between 0 and 1."
            )
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        if self.last_epoch == 0:
            # η_0 ← c η_0
            return [g["lr"] * self.factor for g in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return group_values(self.optimizer, "lr")
        # η_T = η_{T−1} · (1/c)
        return [g["lr"] * (1.0 / self.factor) for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        done = self.last_epoch >= self.total_iters
        # η_t = η_0 (c + [t ≥ T](1 − c))
        return [
            eta0 * (self.factor + done * (1 - self.factor)) for eta0 in self.base_lrs
        ]


class LinearLR(LRScheduler):
    r"""A factor moving linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` epochs
    (linear warmup when it rises), like ``torch.optim.lr_scheduler.LinearLR``.

    With :math:`f(t) = s + (e - s)\min(t, T)/T`:

    .. math::
        \text{closed:}\ \eta_t = \eta_0 f(t), \qquad
        \text{recursive:}\ \eta_t = \eta_{t-1} \frac{f(t)}{f(t-1)}
        = \eta_{t-1}\Bigl(1 + \frac{e - s}{T s + (t - 1)(e - s)}\Bigr) \quad (1 \le t \le T).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or equal to 1."
            )
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(
                "Ending multiplicative factor expected to be between 0 and 1."
            )
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        s, e, T, t = (
            self.start_factor,
            self.end_factor,
            self.total_iters,
            self.last_epoch,
        )
        if t == 0:
            # η_0 ← s η_0
            return [g["lr"] * s for g in self.optimizer.param_groups]
        if self._is_initial or t > T:
            return group_values(self.optimizer, "lr")
        # f(t)/f(t−1) = 1 + (e − s) / (T s + (t − 1)(e − s))
        ratio = 1.0 + (e - s) / (T * s + (t - 1) * (e - s))
        return [g["lr"] * ratio for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        s, e, T = self.start_factor, self.end_factor, self.total_iters
        # η_t = η_0 (s + (e − s) min(t, T)/T)
        return [
            eta0 * (s + (e - s) * min(T, self.last_epoch) / T) for eta0 in self.base_lrs
        ]


class PolynomialLR(LRScheduler):
    r"""Polynomial decay to zero over ``total_iters`` epochs, like ``torch.optim.lr_scheduler.PolynomialLR``.

    .. math::
        \text{closed:}\ \eta_t = \eta_0 \Bigl(1 - \frac{\min(t, T)}{T}\Bigr)^p, \qquad
        \text{recursive:}\ \eta_t = \eta_{t-1} \Bigl(\frac{1 - t/T}{1 - (t-1)/T}\Bigr)^p \quad (1 \le t \le T).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_iters: int = 5,
        power: float = 1.0,
        last_epoch: int = -1,
    ) -> None:
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        T, t = self.total_iters, self.last_epoch
        if self._is_initial or t > T:
            return group_values(self.optimizer, "lr")
        # ((1 − t/T) / (1 − (t−1)/T))^p
        ratio = ((1.0 - t / T) / (1.0 - (t - 1) / T)) ** self.power
        return [g["lr"] * ratio for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        T = self.total_iters
        # η_t = η_0 (1 − min(t, T)/T)^p
        return [
            eta0 * (1.0 - min(T, self.last_epoch) / T) ** self.power
            for eta0 in self.base_lrs
        ]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the initial rate to ``eta_min`` over ``T_max`` epochs (no restarts; the
    cosine continues, rising again after ``T_max``), like ``torch.optim.lr_scheduler.CosineAnnealingLR``.

    .. math::
        \text{closed:}\ \eta_t = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})\bigl(1 + \cos\tfrac{\pi t}{T}\bigr),
        \qquad
        \text{recursive:}\ \eta_t = \eta_{\min} + (\eta_{t-1} - \eta_{\min})
        \frac{1 + \cos(\pi t / T)}{1 + \cos(\pi (t-1) / T)} .

    ``step()`` uses the recursive form (chainable), except where its denominator vanishes
    (:math:`t - 1 = T \bmod 2T`), where it adds the closed form's increment
    :math:`\tfrac12(\eta_0 - \eta_{\min})(1 - \cos\frac{\pi}{T})`, and on the first step after a
    resume (``last_epoch > 0``), where it takes the closed form.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        T_max: int,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def _closed(self, eta0: float, t: float) -> float:
        # η_t = η_min + (η_0 − η_min)(1 + cos(π t / T)) / 2
        return (
            self.eta_min
            + (eta0 - self.eta_min) * (1 + math.cos(t * math.pi / self.T_max)) / 2
        )

    def get_lr(self) -> list:
        warn_outside_step(self)
        T, t, lo = self.T_max, self.last_epoch, self.eta_min
        groups = self.optimizer.param_groups
        if self._is_initial:
            return group_values(self.optimizer, "lr")
        if self._step_count == 1 and t > 0:  # resumed: start from the closed form
            return [self._closed(eta0, t) for eta0 in self.base_lrs]
        if (t - 1 - T) % (
            2 * T
        ) == 0:  # η_{t−1} = η_min: the ratio is 0/0, add the closed form's increment
            # η_t = η_{t−1} + (η_0 − η_min)(1 − cos(π/T)) / 2
            return [
                g["lr"] + (eta0 - lo) * (1 - math.cos(math.pi / T)) / 2
                for eta0, g in zip(self.base_lrs, groups)
            ]
        # η_t = η_min + (η_{t−1} − η_min) (1 + cos(π t/T)) / (1 + cos(π (t−1)/T))
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (g["lr"] - lo) + lo for g in groups]

    def _get_closed_form_lr(self) -> list:
        return [self._closed(eta0, self.last_epoch) for eta0 in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter), like
    ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``.

    Closed form (the only form), with :math:`T_{cur}` the epochs since the last restart and
    :math:`T_i` the current period (:math:`T_0`, then :math:`T_{mult}` times longer after each restart):

    .. math::
        \eta_t = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})\Bigl(1 + \cos\frac{\pi T_{cur}}{T_i}\Bigr).

    ``step(epoch)`` may be given a fractional epoch (a step after every batch).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(
                f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}"
            )
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        # η = η_min + (η_0 − η_min)(1 + cos(π T_cur / T_i)) / 2
        return [
            self.eta_min
            + (eta0 - self.eta_min)
            * (1 + math.cos(math.pi * self.T_cur / self.T_i))
            / 2
            for eta0 in self.base_lrs
        ]

    def _locate(self, epoch: float) -> None:
        """Set T_i and T_cur for an explicit epoch: the periods T_0, T_0 m, T_0 m², ... end at T_0 (m^n − 1)/(m − 1)."""
        if epoch < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        T0, m = self.T_0, self.T_mult
        if epoch < T0:
            self.T_i, self.T_cur = T0, epoch
        elif m == 1:
            self.T_cur = epoch % T0
        else:
            # n restarts so far: T_0 (m^n − 1)/(m − 1) ≤ epoch
            n = int(math.log(epoch / T0 * (m - 1) + 1, m))
            self.T_cur = epoch - T0 * (m**n - 1) / (m - 1)
            self.T_i = T0 * m**n

    def step(self, epoch=None) -> None:
        """Advance one epoch (restarting when T_cur reaches T_i), or jump to ``epoch`` (may be fractional)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:  # a warm restart: T_i ← m T_i
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            self._locate(epoch)
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            lrs = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, lrs):
            set_group_value(group, "lr", lr)
        self._last_lr = group_values(self.optimizer, "lr")
