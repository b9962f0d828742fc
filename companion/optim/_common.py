"""What every companion optimizer shares: refusing torch's pure implementation switches."""

import torch

IMPLEMENTATION_SWITCHES = ("foreach", "fused", "capturable", "differentiable")


def refuse_implementation_switches(**switches) -> None:
    """Raise if a pure implementation switch of torch.optim is turned on.

    ``foreach``, ``fused``, ``capturable`` and ``differentiable`` change how torch computes an update,
    not which update it computes. The course keeps only the readable single-tensor path, so these
    are accepted (to keep torch's signature and state_dict keys) but must stay off.
    """
    for name, value in switches.items():
        if value:
            raise ValueError(
                f"{name}={value!r} is not supported: companion.optim implements only the readable "
                f"single-tensor update; leave {name} at its default"
            )


def check_lr(lr) -> None:
    """torch's learning-rate checks: a tensor must have one element, and the rate must be ≥ 0."""
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if lr < 0.0:
        raise ValueError(f"Invalid learning rate: {lr}")


def scalar(value) -> float:
    """A hyper-parameter as a Python number (torch allows 1-element tensors for some of them)."""
    return value.item() if isinstance(value, torch.Tensor) else value


def step_counter() -> torch.Tensor:
    """A fresh step count as torch keeps it: a CPU scalar tensor, float32 (float64 if that is the default dtype)."""
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(0.0, dtype=dtype)
