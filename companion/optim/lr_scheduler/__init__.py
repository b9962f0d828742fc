"""From-scratch learning-rate schedulers with the contract of ``torch.optim.lr_scheduler``: the same
names, arguments, defaults, ``get_last_lr()``, state_dict keys (a state moves between ours and
torch's), chaining and sequencing, and ValueErrors. Each class subclasses torch's ``LRScheduler`` for
the step counting only; its ``get_lr`` (and ``_get_closed_form_lr``) holds the schedule, with the
formula in its docstring. Call ``step()`` once per epoch (per batch for ``CyclicLR`` and ``OneCycleLR``),
after ``optimizer.step()``."""

from companion.optim.lr_scheduler.multiplicative import (
    LambdaLR,
    MultiplicativeLR,
    StepLR,
    MultiStepLR,
    ExponentialLR,
)
from companion.optim.lr_scheduler.annealing import (
    ConstantLR,
    LinearLR,
    PolynomialLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
)
from companion.optim.lr_scheduler.cyclic import CyclicLR
from companion.optim.lr_scheduler.one_cycle import OneCycleLR
from companion.optim.lr_scheduler.composite import SequentialLR, ChainedScheduler
from companion.optim.lr_scheduler.plateau import ReduceLROnPlateau

__all__ = [
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "OneCycleLR",
    "SequentialLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
]
