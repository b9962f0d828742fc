r"""Schedules that multiply the learning rate by a factor: by a function of the epoch, or by γ at
fixed epochs (``StepLR``, ``MultiStepLR``) or at every epoch (``ExponentialLR``)."""

from bisect import bisect_right
from collections import Counter
from typing import Callable, Iterable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from companion.optim.lr_scheduler._base import (
    functions_state,
    group_values,
    load_functions_state,
    warn_outside_step,
    without,
)


def _one_function_per_group(optimizer: Optimizer, lr_lambda) -> list:
    if not isinstance(lr_lambda, (list, tuple)):
        return [lr_lambda] * len(optimizer.param_groups)
    if len(lr_lambda) != len(optimizer.param_groups):
        raise ValueError(
            f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}"
        )
    return list(lr_lambda)


class _FunctionsInState:
    """state_dict / load_state_dict for schedulers holding user functions in ``lr_lambdas``."""

    def state_dict(self) -> dict:
        state = without(self.__dict__, "optimizer", "lr_lambdas")
        # plain functions cannot be saved; callable objects keep their attributes
        state["lr_lambdas"] = functions_state(self.lr_lambdas)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(without(state_dict, "lr_lambdas"))
        load_functions_state(self.lr_lambdas, state_dict["lr_lambdas"])


class LambdaLR(_FunctionsInState, LRScheduler):
    r"""The initial learning rate times a user function of the epoch, like ``torch.optim.lr_scheduler.LambdaLR``.

    Closed form (the only form):

    .. math::
        \eta_t = \eta_0\, \lambda(t) .
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | list,
        last_epoch: int = -1,
    ) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _one_function_per_group(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        # η_t = η_0 λ(t)
        return [
            eta0 * lam(self.last_epoch)
            for lam, eta0 in zip(self.lr_lambdas, self.base_lrs)
        ]


class MultiplicativeLR(_FunctionsInState, LRScheduler):
    r"""The current learning rate times a user function of the epoch, like ``torch.optim.lr_scheduler.MultiplicativeLR``.

    Recursive form (chainable):

    .. math::
        \eta_t = \eta_{t-1}\, \lambda(t) \quad (t \ge 1), \qquad \eta_0 \text{ unchanged at construction.}
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | list,
        last_epoch: int = -1,
    ) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _one_function_per_group(optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(
                    f"lr_lambda should be a function, but got {type(fn).__name__}"
                )
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        if self._is_initial:
            return group_values(self.optimizer, "lr")
        # η_t = η_{t−1} λ(t)
        return [
            g["lr"] * lam(self.last_epoch)
            for lam, g in zip(self.lr_lambdas, self.optimizer.param_groups)
        ]


class StepLR(LRScheduler):
    r"""Multiply the learning rate by γ every ``step_size`` epochs, like ``torch.optim.lr_scheduler.StepLR``.

    .. math::
        \text{closed:}\ \eta_t = \eta_0\, \gamma^{\lfloor t / s \rfloor}, \qquad
        \text{recursive:}\ \eta_t = \begin{cases} \gamma\, \eta_{t-1} & t > 0,\ s \mid t \\
        \eta_{t-1} & \text{otherwise} \end{cases}

    ``step()`` applies the recursive form; an explicit epoch uses the closed form.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        step_size: int,
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        t = self.last_epoch
        if t == 0 or t % self.step_size != 0:
            return group_values(self.optimizer, "lr")
        # η_t = γ η_{t−1} at every multiple of s
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        # η_t = η_0 γ^⌊t/s⌋
        return [
            eta0 * self.gamma ** (self.last_epoch // self.step_size)
            for eta0 in self.base_lrs
        ]


class MultiStepLR(LRScheduler):
    r"""Multiply the learning rate by γ at each milestone, like ``torch.optim.lr_scheduler.MultiStepLR``.

    With :math:`m(t)` the number of times epoch :math:`t` is listed and :math:`M(t)` the number of
    milestones :math:`\le t`:

    .. math::
        \text{closed:}\ \eta_t = \eta_0\, \gamma^{M(t)}, \qquad
        \text{recursive:}\ \eta_t = \eta_{t-1}\, \gamma^{m(t)} .
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Iterable[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        if self.last_epoch not in self.milestones:
            return group_values(self.optimizer, "lr")
        # η_t = η_{t−1} γ^{m(t)}
        return [
            g["lr"] * self.gamma ** self.milestones[self.last_epoch]
            for g in self.optimizer.param_groups
        ]

    def _get_closed_form_lr(self) -> list:
        passed = bisect_right(sorted(self.milestones.elements()), self.last_epoch)
        # η_t = η_0 γ^{M(t)}
        return [eta0 * self.gamma**passed for eta0 in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""Multiply the learning rate by γ every epoch, like ``torch.optim.lr_scheduler.ExponentialLR``.

    .. math::
        \text{closed:}\ \eta_t = \eta_0\, \gamma^t, \qquad \text{recursive:}\ \eta_t = \gamma\, \eta_{t-1} .
    """

    def __init__(
        self, optimizer: Optimizer, gamma: float, last_epoch: int = -1
    ) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        warn_outside_step(self)
        if self._is_initial:  # resuming from a checkpoint must not step one epoch ahead
            return group_values(self.optimizer, "lr")
        # η_t = γ η_{t−1}
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        # η_t = η_0 γ^t
        return [eta0 * self.gamma**self.last_epoch for eta0 in self.base_lrs]
