"""Muon for the hidden matrices of a network and AdamW for everything else, and the scalar view of the
Newton–Schulz iteration: used by chapter 8.3 (Muon).

Jordan et al. train only the 2-D weights of the hidden layers with Muon; biases, gains and the first and last
layers go to AdamW. :func:`split_hidden` makes that split for a stack of ``nn.Linear`` layers,
:class:`Combined` steps the two optimizers as one (what :func:`companion.core.train.fit` needs), and
:func:`muon_with_adamw` builds the pair. :func:`polynomial_iterates` applies an odd polynomial
σ ↦ aσ + bσ³ + cσ⁵ to singular values, which is what each Newton–Schulz step does to a matrix.
"""

from typing import Iterable

import torch
from torch import Tensor, nn

from companion.core.checks import check
from companion.optim.adamw import AdamW
from companion.optim.muon import Muon

CUBIC = (1.5, -0.5, 0.0)
"""Björck and Bowie's cubic iteration X ← (3X − X Xᵀ X) / 2 as (a, b, c): σ ↦ 1.5σ − 0.5σ³."""


def split_hidden(model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
    """The weights of every ``nn.Linear`` of ``model`` except the first and the last (the hidden matrices),
    and every other parameter (biases, the first and last layers, anything not linear), in module order."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    check(
        len(linears) >= 3,
        f"need at least 3 linear layers to have a hidden one, got {len(linears)}",
    )
    hidden = [m.weight for m in linears[1:-1]]
    ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return hidden, rest


class Combined:
    """Optimizers over disjoint parameters stepped as one: ``zero_grad`` and ``step`` call each in turn, and
    ``param_groups`` lists all their groups (so a reader sees every learning rate). ``step(closure)`` evaluates
    the closure once, then steps every optimizer on the gradients it left."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        check(len(optimizers) > 0, "need at least one optimizer")
        seen: set[int] = set()
        for opt in optimizers:
            for group in opt.param_groups:
                for p in group["params"]:
                    check(
                        id(p) not in seen,
                        "a parameter belongs to two of the optimizers",
                    )
                    seen.add(id(p))
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict]:
        return [group for opt in self.optimizers for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.optimizers:
            opt.step()
        return loss

    def state_dict(self) -> list[dict]:
        return [opt.state_dict() for opt in self.optimizers]

    def load_state_dict(self, states: Iterable[dict]) -> None:
        states = list(states)
        check(
            len(states) == len(self.optimizers),
            f"{len(states)} states for {len(self.optimizers)} optimizers",
        )
        for opt, state in zip(self.optimizers, states):
            opt.load_state_dict(state)


def muon_with_adamw(
    model: nn.Module,
    muon_lr: float,
    adamw_lr: float,
    weight_decay: float = 0.01,
    muon=Muon,
    adamw=AdamW,
    **muon_options,
) -> Combined:
    """Muon (``muon_lr``, ``muon_options``) on the hidden matrices of ``model`` and AdamW (``adamw_lr``, its
    other defaults) on the rest, both with decoupled ``weight_decay``; ``muon`` and ``adamw`` pick the classes
    (torch's, to compare)."""
    hidden, rest = split_hidden(model)
    return Combined(
        muon(hidden, lr=muon_lr, weight_decay=weight_decay, **muon_options),
        adamw(rest, lr=adamw_lr, weight_decay=weight_decay),
    )


def polynomial_iterates(
    sigma: Tensor, coefficients: tuple[float, float, float], steps: int
) -> Tensor:
    r"""The singular values after 0, 1, ..., ``steps`` Newton–Schulz steps from σ₀ = ``sigma``, rows of the result:

    .. math::
        \sigma_{k+1} = a\,\sigma_k + b\,\sigma_k^3 + c\,\sigma_k^5

    (in ``sigma``'s dtype; an X with singular values σ_k becomes one with σ_{k+1} and the same singular vectors).
    """
    a, b, c = coefficients
    rows = [sigma]
    for _ in range(steps):
        s = rows[-1]
        # σ ↦ aσ + bσ³ + cσ⁵
        rows.append(a * s + b * s**3 + c * s**5)
    return torch.stack(rows)


def singular_values(matrix: Tensor) -> Tensor:
    """The singular values of a 2-D tensor in float64, largest first."""
    check(matrix.dim() == 2, f"need a matrix, got {matrix.dim()} dimensions")
    return torch.linalg.svdvals(matrix.detach().double())


class LinearDecay:
    """Every parameter group's learning rate falls linearly from its value at construction to 0 over ``epochs``
    calls of ``step`` (one per epoch, as :func:`companion.core.train.fit` calls a scheduler): epoch e ≥ 1 runs at
    (1 − (e − 1)/``epochs``) times the initial rate. Works on anything with ``param_groups``, such as
    :class:`Combined`."""

    def __init__(self, optimizer, epochs: int) -> None:
        check(epochs > 0, f"epochs must be positive, got {epochs}")
        self.groups = optimizer.param_groups
        self.base = [group["lr"] for group in self.groups]
        self.epochs, self.done = epochs, 0

    def step(self) -> None:
        self.done += 1
        for group, base in zip(self.groups, self.base):
            # γ_e = γ₀ (1 − e/E) after e epochs
            group["lr"] = base * max(0.0, 1 - self.done / self.epochs)
