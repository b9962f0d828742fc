"""What every companion optimizer shares: the step loop, the state set-up, and torch's argument checks.

An optimizer of the course is a :class:`PerTensorOptimizer`: its constructor validates the
hyper-parameters with torch's messages and stores them as torch does, and its :meth:`~PerTensorOptimizer.update`
hands one parameter tensor to the readable per-tensor function (``sgd_step``, ``adam_step``, ...) that
holds the math. The loop around it (the closure, the groups, skipping parameters without a gradient,
refusing sparse gradients) is written once, here.
"""

import torch
from torch import Tensor

from companion.core.checks import check

IMPLEMENTATION_SWITCHES = ("foreach", "fused", "capturable", "differentiable")


class PerTensorOptimizer(torch.optim.Optimizer):
    """The step loop of every companion optimizer; a subclass writes :meth:`update` for one tensor.

    ``sparse_gradients``: ``False`` (the default) refuses a sparse gradient with ``sparse_message``
    (torch's text); ``True`` passes it on to :meth:`update`.
    """

    sparse_gradients = False
    sparse_message = "{name} does not support sparse gradients"

    def update(self, param: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """One step for one parameter tensor, in place: call the per-tensor function with the group's hyper-parameters."""
        raise NotImplementedError

    def state_of(self, param: Tensor, group: dict) -> dict:
        """The state dictionary :meth:`update` works on (torch's ``self.state[param]``)."""
        return self.state[param]

    @torch.no_grad()
    def step(self, closure=None):
        """Take one step for every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue  # no gradient: the parameter and its state are left alone
                if p.grad.is_sparse and not self.sparse_gradients:
                    raise RuntimeError(self.sparse_message.format(name=type(self).__name__))
                self.update(p, p.grad, self.state_of(p, group), group)
        return loss


def step_counter() -> Tensor:
    """A fresh step count as torch keeps it: a CPU scalar tensor, float32 (float64 if that is the default dtype)."""
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(0.0, dtype=dtype)


def init_state(state: dict, param: Tensor, *buffers: str, fill: float = 0.0) -> None:
    """Create an optimizer's state as torch does: ``step`` = 0 and each named buffer shaped like ``param``, filled with ``fill``."""
    state["step"] = step_counter()
    for name in buffers:
        state[name] = torch.full_like(param, fill, memory_format=torch.preserve_format)


def check_hyperparameters(**values) -> None:
    """torch's ``Invalid <name> value: <value>`` check for each hyper-parameter that must be ≥ 0, in the
    order given (torch reports the first that fails; ``eps`` is reported as ``epsilon``)."""
    for name, value in values.items():
        check(0.0 <= value, f"Invalid {'epsilon' if name == 'eps' else name} value: {value}")


def check_betas(betas) -> None:
    """torch's range check for a pair of Adam-style betas: each in [0, 1), reported by its index."""
    for i, beta in enumerate(betas[:2]):
        check(0.0 <= beta < 1.0, f"Invalid beta parameter at index {i}: {beta}")


def check_lr(lr) -> None:
    """torch's learning-rate checks: a tensor must have one element, and the rate must be ≥ 0."""
    check(not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element")
    check(lr >= 0.0, f"Invalid learning rate: {lr}")


def refuse_implementation_switches(**switches) -> None:
    """Raise if a pure implementation switch of torch.optim is turned on.

    ``foreach``, ``fused``, ``capturable`` and ``differentiable`` change how torch computes an update,
    not which update it computes. The course keeps only the readable single-tensor path, so these
    are accepted (to keep torch's signature and state_dict keys) but must stay off.
    """
    for name, value in switches.items():
        check(not value, f"{name}={value!r} is not supported: companion.optim implements only the readable "
                         f"single-tensor update; leave {name} at its default")


def scalar(value) -> float:
    """A hyper-parameter as a Python number (torch allows 1-element tensors for some of them)."""
    return value.item() if isinstance(value, Tensor) else value
