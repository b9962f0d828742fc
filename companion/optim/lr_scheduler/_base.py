r"""Bookkeeping shared by the schedulers: reading and writing a value of every parameter group.

Every scheduler here subclasses ``torch.optim.lr_scheduler.LRScheduler`` for the bookkeeping only:
its ``__init__`` records ``initial_lr`` and ``base_lrs``, counts steps (``last_epoch``,
``_step_count``), calls ``get_lr`` once at construction (with ``_is_initial`` set) and again on each
``step()``, writes the result into the groups and keeps a copy for ``get_last_lr()``; its
``state_dict`` is every attribute except the optimizer. The schedules themselves — ``get_lr`` (the
form applied on each ``step()``) and ``_get_closed_form_lr`` (the form for an explicit epoch, which
``SequentialLR`` uses at its milestones) — are written in this subpackage.

Two forms of a schedule :math:`\eta_t = \eta_0 f(t)`:

.. math::
    \text{closed:}\quad \eta_t = \eta_0\, f(t), \qquad
    \text{recursive (chainable):}\quad \eta_t = \eta_{t-1}\, \frac{f(t)}{f(t-1)} .

The recursive form multiplies whatever learning rate the group holds, so several schedules can be
applied one after the other (``ChainedScheduler``); torch uses it wherever the ratio is defined, and
so do we, with the same grouping of operations, so the two agree to rounding.
"""

import types
import warnings
from typing import Any

from torch import Tensor
from torch.optim import Optimizer

NOT_IN_STEP_WARNING = "To get the last learning rate computed by the scheduler, please use `get_last_lr()`."


def group_values(optimizer: Optimizer, key: str) -> list:
    """``group[key]`` of every parameter group (tensors copied, so the list never aliases a group)."""
    return [
        g[key].clone() if isinstance(g[key], Tensor) else g[key]
        for g in optimizer.param_groups
    ]


def set_group_value(group: dict, key: str, value) -> None:
    """Write ``value`` into ``group[key]`` (in place when the group holds a tensor)."""
    if isinstance(group[key], Tensor):
        group[key].fill_(value.item() if isinstance(value, Tensor) else value)
    else:
        group[key] = value


def per_group(name: str, optimizer: Optimizer, value) -> list:
    """One value per parameter group: a scalar is repeated, a list must have one entry per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(value)} values, param_groups has {len(optimizer.param_groups)}."
            )
    else:
        value = [value] * len(optimizer.param_groups)
    return [v.clone() if isinstance(v, Tensor) else v for v in value]


def check_is_optimizer(optimizer) -> None:
    """The TypeError torch raises for something that is not an ``Optimizer``."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")


def warn_outside_step(scheduler) -> None:
    """``get_lr()`` computes the *next* rates; called by hand it warns, as torch's does."""
    if not getattr(scheduler, "_get_lr_called_within_step", False):
        warnings.warn(NOT_IN_STEP_WARNING, UserWarning, stacklevel=3)


def set_momentum(group: dict, momentum: float, use_beta1: bool) -> None:
    """Write a momentum into a group: ``betas[0]`` for Adam-like optimizers, else ``momentum``."""
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


def functions_state(functions: list) -> list:
    """What a state_dict keeps of user functions: the attributes of callable objects, None for plain functions."""
    return [
        None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
        for fn in functions
    ]


def load_functions_state(functions: list, saved: list) -> None:
    """Restore the attributes of callable objects saved by :func:`functions_state`."""
    for fn, attributes in zip(functions, saved):
        if attributes is not None:
            fn.__dict__.update(attributes)


def without(state: dict[str, Any], *keys: str) -> dict[str, Any]:
    """A shallow copy of ``state`` without ``keys``."""
    return {k: v for k, v in state.items() if k not in keys}
