"""The small networks the chapters train."""

from typing import Callable

from torch import nn


def mlp(
    in_features: int = 64,
    hidden: tuple[int, ...] = (64,),
    out_features: int = 10,
    activation: Callable[[], nn.Module] = nn.ReLU,
    dropout: Callable[[], nn.Module] | None = None,
    norm: Callable[[int], nn.Module] | None = None,
    linear: Callable[[int, int], nn.Module] = nn.Linear,
) -> nn.Sequential:
    """A multilayer perceptron: [linear → (norm) → activation → (dropout)] per hidden layer, then linear.

    Every piece is a factory, so a chapter can swap in its own layer: ``norm=companion.nn.BatchNorm1d``,
    ``dropout=lambda: companion.nn.Dropout(0.5)``, ``linear=companion.regularization.DropConnectLinear``, ...
    """
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers.append(linear(width, h))
        if norm is not None:
            layers.append(norm(h))
        layers.append(activation())
        if dropout is not None:
            layers.append(dropout())
        width = h
    layers.append(linear(width, out_features))
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
