r"""Schedules made of schedules: one after another at milestones (``SequentialLR``, e.g. a warmup then a
decay), or several applied on every step (``ChainedScheduler``, products of chainable factors)."""

from bisect import bisect_right
from typing import Sequence

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from companion.optim.lr_scheduler._base import group_values, set_group_value, without


def _is_plateau(scheduler) -> bool:
    from companion.optim.lr_scheduler.plateau import ReduceLROnPlateau

    return isinstance(
        scheduler, (ReduceLROnPlateau, torch.optim.lr_scheduler.ReduceLROnPlateau)
    )


def _check_members(owner: str, optimizer: Optimizer, schedulers: Sequence) -> None:
    """torch's checks: each member has an optimizer, is not a plateau scheduler, and shares ``optimizer``."""
    for i, s in enumerate(schedulers):
        if not hasattr(s, "optimizer"):
            raise TypeError(
                f"{owner} at index {i} should have `optimizer` as its attribute."
            )
        if _is_plateau(s):
            raise ValueError(
                f"{owner} does not support `ReduceLROnPlateau` scheduler as it "
                "requires additional kwargs to be specified when calling `step`, "
                f"but got one at index {i} in the given schedulers sequence."
            )
        if optimizer != s.optimizer:
            raise ValueError(
                f"{owner} expects all schedulers to belong to the same optimizer, but "
                f"got scheduler {s.__class__.__name__} at index {i} has {s.optimizer}, "
                f"which is different from {optimizer.__class__.__name__}."
            )


class _MembersInState:
    """state_dict / load_state_dict that nest the members' own state_dicts under ``_schedulers``."""

    def state_dict(self) -> dict:
        state = without(self.__dict__, "optimizer", "_schedulers")
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(without(state_dict, "_schedulers"))
        for s, saved in zip(self._schedulers, state_dict["_schedulers"]):
            s.load_state_dict(saved)


class SequentialLR(_MembersInState, LRScheduler):
    r"""Schedulers taking turns at milestones, like ``torch.optim.lr_scheduler.SequentialLR``.

    With milestones :math:`m_1 < \dots < m_{k}` and schedules :math:`S_0, \dots, S_k`, epoch
    :math:`t` belongs to :math:`S_j` with :math:`j = \#\{i : m_i \le t\}`; at :math:`t = m_j` the
    schedule :math:`S_j` starts afresh from its own epoch 0 (its closed form at 0), so a warmup
    followed by a decay reads

    .. math::
        \eta_t = \begin{cases} S_0(t) & t < m_1 \\ S_1(t - m_1) & m_1 \le t < m_2 \\ \dots \end{cases}
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedulers: list,
        milestones: list[int],
        last_epoch: int = -1,
    ) -> None:
        owner = self.__class__.__name__
        if len(schedulers) < 1:
            raise ValueError(
                f"{owner} expects at least one scheduler, but got no scheduler."
            )
        _check_members(owner, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more "
                f"than the number of milestone points, but got number of schedulers {len(schedulers)} and the "
                f"number of milestones to be equal to {len(milestones)}"
            )
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        # every member has already stepped once when it was built: back to the initial rates ...
        for group in optimizer.param_groups:
            set_group_value(group, "lr", group["initial_lr"])
        # ... and back one epoch in every member's count
        self.recursive_undo()
        # then only the scheduler in charge at epoch 0 takes its initial step
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def recursive_undo(self, sched=None) -> None:
        """Undo the construction step of every member (recursing into nested composite schedulers)."""
        node = self if sched is None else sched
        if hasattr(node, "_schedulers"):
            for s in node._schedulers:
                self.recursive_undo(s)
        elif hasattr(node, "last_epoch"):
            node.last_epoch -= 1

    def step(self) -> None:
        """Advance one epoch; at a milestone the next scheduler restarts from its epoch 0."""
        self.last_epoch += 1
        j = bisect_right(self._milestones, self.last_epoch)
        current = self._schedulers[j]
        if j > 0 and self._milestones[j - 1] == self.last_epoch:
            current._update_lr(
                0
            )  # S_j at its own epoch 0 (closed form where it has one)
        else:
            current.step()
        self._last_lr = current.get_last_lr()


class ChainedScheduler(_MembersInState, LRScheduler):
    r"""Several schedulers stepped together, like ``torch.optim.lr_scheduler.ChainedScheduler``.

    Each member applies its recursive (chainable) update to the rate the previous one left, so for
    multiplicative members the factors multiply:

    .. math::
        \eta_t = \eta_{t-1} \prod_{i} \frac{f_i(t)}{f_i(t-1)} .
    """

    def __init__(
        self, schedulers: Sequence, optimizer: Optimizer | None = None
    ) -> None:
        owner = self.__class__.__name__
        if len(schedulers) < 1:
            raise ValueError(
                f"{owner} expects at least one scheduler to be chained, but got no scheduler."
            )
        optimizer = optimizer or schedulers[0].optimizer
        _check_members(owner, optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = group_values(self._schedulers[-1].optimizer, "lr")

    def step(self) -> None:
        """Step every member, in order."""
        for s in self._schedulers:
            s.step()
        self._last_lr = group_values(self._schedulers[-1].optimizer, "lr")
