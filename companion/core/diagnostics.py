"""Looking inside a network: how the signal's variance and the gradient change from layer to layer,
which hidden units are dead, and whether units are still copies of each other.

Everything works on models built from ``torch.nn.Linear`` layers (``companion.core.models.mlp`` and plain
``nn.Sequential`` stacks): layer ℓ's *activation* h_ℓ is the input of the (ℓ+1)-th linear layer.
"""

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from companion import init


@dataclass
class SignalStats:
    """Per-layer measurements from one forward and backward pass."""

    activation_var: list[float]
    """Var(h_ℓ) over all entries, for every hidden layer ℓ = 1..L (the input of each linear layer but the first)."""
    gradient_var: list[float]
    """Var(∂L/∂h_ℓ) for the same tensors: the backward signal arriving at layer ℓ."""
    weight_grad_norm: list[float]
    """‖∂L/∂W‖ (Frobenius) for every linear layer, first to last."""


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``model`` in the order ``model.modules()`` lists them."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def init_linear_(
    model: nn.Module,
    weight_init: Callable[[Tensor], Tensor],
    bias_init: Callable[[Tensor], Tensor] = init.zeros_,
) -> nn.Module:
    """Re-initialize every linear layer: ``weight_init(weight)`` and ``bias_init(bias)``, in place; returns ``model``."""
    for layer in linear_layers(model):
        weight_init(layer.weight)
        if layer.bias is not None:
            bias_init(layer.bias)
    return model


def signal_statistics(
    model: nn.Module,
    x: Tensor,
    loss: Callable[[Tensor], Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> SignalStats:
    """Run ``x`` through ``model`` and back; record each hidden activation's variance, the variance of
    the gradient reaching it, and each linear layer's weight-gradient norm.

    The backward pass starts from ``loss(output)``; by default from ⟨output, r⟩ with r a fixed
    standard-normal tensor (drawn with ``generator``), i.e. a unit-variance gradient at the output, so
    that what is measured is how the network itself propagates the signal back. ``.grad`` fields are
    left untouched.
    """
    layers = linear_layers(model)
    activations: list[Tensor] = []

    def keep_input(module, inputs, output):
        activations.append(inputs[0])

    handles = [layer.register_forward_hook(keep_input) for layer in layers[1:]]
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    if loss is None:
        r = torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
        objective = (out * r).sum()
    else:
        objective = loss(out)
    weights = [layer.weight for layer in layers]
    grads = torch.autograd.grad(objective, activations + weights)
    act_grads, weight_grads = grads[: len(activations)], grads[len(activations) :]
    return SignalStats(
        activation_var=[h.detach().var().item() for h in activations],
        gradient_var=[g.var().item() for g in act_grads],
        weight_grad_norm=[g.norm().item() for g in weight_grads],
    )


@torch.no_grad()
def hidden_preactivations(model: nn.Module, X: Tensor) -> list[Tensor]:
    """The outputs of each hidden linear layer (all but the last) of ``model`` on ``X``, in eval mode:
    the pre-activations z of its hidden units, recorded by forward hooks (the model's mode is restored)."""
    outputs: list[Tensor] = []
    was_training = model.training
    model.eval()
    handles = [
        layer.register_forward_hook(lambda m, i, z: outputs.append(z))
        for layer in linear_layers(model)[:-1]
    ]
    try:
        model(X)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return outputs


@torch.no_grad()
def dead_fraction(model: nn.Module, X: Tensor) -> list[float]:
    """For each hidden linear layer (all but the last), the fraction of its units whose output (the
    pre-activation) is ≤ 0 on every row of ``X``.

    A ReLU after such a unit outputs 0 and passes no gradient on this data: the unit is *dead*. (After
    a leaky ReLU, PReLU or ELU the same unit still passes a gradient.)
    """
    # a unit is dead if its pre-activation is ≤ 0 on every row
    return [
        (z <= 0).all(dim=0).float().mean().item()
        for z in hidden_preactivations(model, X)
    ]


def unit_spread(weight: Tensor) -> float:
    """The largest difference between any unit's incoming weights (a row of ``weight``) and the first
    unit's: 0 when all units of the layer are identical copies."""
    w = weight.detach()
    return (w - w[:1]).abs().max().item()


__all__ = [
    "SignalStats",
    "linear_layers",
    "init_linear_",
    "signal_statistics",
    "dead_fraction",
    "unit_spread",
]
