"""What every companion optimizer shares: the step loop, the state set-up, and torch's argument checks.

An optimizer of the course is a :class:`PerTensorOptimizer`: its constructor validates the
hyper-parameters with torch's messages and stores them as torch does, and its :meth:`~PerTensorOptimizer.update`
hands one parameter tensor to the readable per-tensor function (``sgd_step``, ``adam_step``, ...) that
holds the math. The loop around it (the closure, the groups, skipping parameters without a gradient,
refusing sparse gradients) is written once, here.

Two faster paths compute the same update. With ``foreach=True`` a group's tensors are bucketed by
device and dtype, and :meth:`~PerTensorOptimizer.update_foreach` updates each bucket with
``torch._foreach_*`` arithmetic, one operation over a list of tensors instead of one per tensor (the
``*_foreach`` functions). With ``fused=True`` :meth:`~PerTensorOptimizer.update_fused` runs, per bucket, one kernel of
the course's own (:mod:`companion.optim.fused`, written in Triton) that reads and writes each number once.
``foreach=None``, the default, means the readable per-tensor path (torch would choose foreach on a GPU).
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

    def update_foreach(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict], group: dict
    ) -> None:
        """One step for a list of parameters that share a device and a dtype (``foreach=True``)."""
        raise NotImplementedError

    def update_fused(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict], group: dict
    ) -> None:
        """One step for a list of parameters that share a device and a dtype, with a fused kernel (``fused=True``)."""
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
            # parameters without a gradient, and their state, are left alone
            params = [p for p in group["params"] if p.grad is not None]
            sparse = any(p.grad.is_sparse for p in params)
            if sparse and not self.sparse_gradients:
                raise RuntimeError(self.sparse_message.format(name=type(self).__name__))
            # like torch, a sparse gradient takes the per-tensor path unless the group is fused
            fast = (
                self.update_fused
                if group.get("fused")
                else self.update_foreach
                if group.get("foreach") and not sparse
                else None
            )
            if fast is not None:
                for bucket in by_device_and_dtype(params):
                    fast(
                        bucket,
                        [p.grad for p in bucket],
                        [self.state_of(p, group) for p in bucket],
                        group,
                    )
            else:
                for p in params:
                    self.update(p, p.grad, self.state_of(p, group), group)
        return loss


def by_device_and_dtype(params: list[Tensor]) -> list[list[Tensor]]:
    """The parameters split into lists that share a device and a dtype, in their order (a ``_foreach_*``
    operation takes tensors of one device and dtype)."""
    buckets: dict[tuple, list[Tensor]] = {}
    for p in params:
        buckets.setdefault((p.device, p.dtype), []).append(p)
    return list(buckets.values())


def step_counter() -> Tensor:
    """A fresh step count as torch keeps it: a CPU scalar tensor, float32 (float64 if that is the default dtype)."""
    dtype = (
        torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    )
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
        check(
            0.0 <= value,
            f"Invalid {'epsilon' if name == 'eps' else name} value: {value}",
        )


def check_betas(betas) -> None:
    """torch's range check for a pair of Adam-style betas: each in [0, 1), reported by its index."""
    for i, beta in enumerate(betas[:2]):
        check(0.0 <= beta < 1.0, f"Invalid beta parameter at index {i}: {beta}")


def check_lr(lr) -> None:
    """torch's learning-rate checks: a tensor must have one element, and the rate must be ≥ 0."""
    check(
        not (isinstance(lr, Tensor) and lr.numel() != 1), "Tensor lr must be 1-element"
    )
    check(lr >= 0.0, f"Invalid learning rate: {lr}")


def check_fast_paths(
    *, foreach: bool | None, fused: bool | None, differentiable: bool = False
) -> None:
    """torch's checks on the two fast paths: ``fused`` excludes ``foreach`` and ``differentiable``."""
    if fused:
        if differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


def refuse_implementation_switches(**switches) -> None:
    """Raise if a pure implementation switch of torch.optim is turned on.

    ``foreach``, ``fused``, ``capturable`` and ``differentiable`` change how torch computes an update,
    not which update it computes. Where an optimizer of the course has no such path, the switch is
    accepted (to keep torch's signature and state_dict keys) but must stay off.
    """
    for name, value in switches.items():
        check(
            not value,
            f"{name}={value!r} is not supported: this optimizer of companion.optim has no {name} "
            f"path; leave {name} at its default",
        )


def scalar(value) -> float:
    """A hyper-parameter as a Python number (torch allows 1-element tensors for some of them)."""
    return value.item() if isinstance(value, Tensor) else value
