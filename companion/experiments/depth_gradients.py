r"""Gradients through depth: how their norm changes from the output layer back to the input layer,
what happens when it explodes and is clipped (Pascanu et al., 2013), and how a residual connection
keeps it from vanishing (He et al., 2016). Used by the chapter on vanishing and exploding gradients.

The per-layer measurement is :func:`companion.core.diagnostics.signal_statistics`; this module adds
the deep networks, a residual variant, and a training loop that applies a clipping rule each step.
"""

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from companion.core.data import Split
from companion.core.diagnostics import SignalStats, signal_statistics
from companion.core.models import mlp
from companion.nn.loss import cross_entropy
from companion.nn.utils import clip_grad_norm_, clip_grad_value_


class ResidualBlock(nn.Module):
    r"""h ↦ h + α φ(W h + b): the identity plus a learned correction scaled by α, so that
    ∂h_out/∂h = I + α diag(φ′) W stays close to the identity and a product of many of them neither
    vanishes nor, for small α, explodes."""

    def __init__(
        self, width: int, activation: Callable[[], nn.Module], alpha: float = 1.0
    ):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.activation = activation()
        self.alpha = alpha

    def forward(self, h: Tensor) -> Tensor:
        # h_{ℓ+1} = h_ℓ + α φ(W_ℓ h_ℓ + b_ℓ)
        return h + self.alpha * self.activation(self.linear(h))


def deep_mlp(
    in_features: int,
    width: int,
    depth: int,
    out_features: int,
    activation: Callable[[], nn.Module] = nn.Tanh,
    residual: bool = False,
) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units: plain (``companion.core.models.mlp``), or an input
    layer followed by ``depth − 1`` :class:`ResidualBlock` s with α = 1/√(depth − 1) (so the variance
    added by all the branches together stays bounded as depth grows), then a linear read-out."""
    if not residual:
        return mlp(in_features, (width,) * depth, out_features, activation=activation)
    alpha = (depth - 1) ** -0.5 if depth > 1 else 1.0
    blocks = [ResidualBlock(width, activation, alpha) for _ in range(depth - 1)]
    return nn.Sequential(
        nn.Linear(in_features, width),
        activation(),
        *blocks,
        nn.Linear(width, out_features),
    )


def gradients_through_depth(
    model: nn.Module, data: Split, loss: Callable = cross_entropy
) -> SignalStats:
    """:func:`~companion.core.diagnostics.signal_statistics` for the loss on ``data``: per layer, input
    side first, the variance of ∂L/∂h_ℓ and the norm ‖∂L/∂W_ℓ‖ (``.grad`` is left untouched)."""
    return signal_statistics(model, data.X, loss=lambda out: loss(out, data.y))


def cosine(a: list[Tensor], b: list[Tensor]) -> float:
    r"""cos∠(a, b) of two gradients, each given as a list of tensors (one long vector)."""
    a = torch.cat([t.reshape(-1) for t in a])
    b = torch.cat([t.reshape(-1) for t in b])
    return (a @ b / (a.norm() * b.norm())).item()


@dataclass
class ClippedRun:
    """A training run under one clipping rule: per-step loss, gradient norm before clipping, and the
    cosine between the clipped and the raw gradient."""

    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    cosines: list[float] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        """The loss became nan or infinite, or ended above where it started."""
        last = torch.tensor(self.losses[-1])
        return bool(~last.isfinite()) or self.losses[-1] > self.losses[0]


def train_clipped(
    model: nn.Module,
    data: Split,
    clip: str = "none",
    threshold: float = 1.0,
    steps: int = 100,
    lr: float = 0.1,
    loss: Callable = cross_entropy,
) -> ClippedRun:
    """Full-batch gradient descent on ``data`` for ``steps`` steps, clipping each gradient by
    ``clip`` = ``"none"``, ``"norm"`` (:func:`~companion.nn.utils.clip_grad.clip_grad_norm_` to ``threshold``)
    or ``"value"`` (:func:`~companion.nn.utils.clip_grad.clip_grad_value_` at ``threshold``). Stops early once
    the loss is not finite."""
    if clip not in ("none", "norm", "value"):
        raise ValueError(f"clip must be 'none', 'norm' or 'value', got {clip!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    run = ClippedRun()
    for _ in range(steps):
        for p in params:
            p.grad = None
        value = loss(model(data.X), data.y)
        run.losses.append(value.item())
        if not torch.isfinite(value):
            break
        value.backward()
        raw = [p.grad.clone() for p in params]
        norm = (
            clip_grad_norm_(params, threshold)
            if clip == "norm"
            else clip_grad_norm_(params, float("inf"))
        )
        if clip == "value":
            clip_grad_value_(params, threshold)
        run.grad_norms.append(
            norm.item()
            if clip == "norm"
            else torch.cat([g.reshape(-1) for g in raw]).norm().item()
        )
        run.cosines.append(cosine(raw, [p.grad for p in params]))
        with torch.no_grad():
            for p in params:
                # θ ← θ − η g (g clipped by the rule)
                p.add_(p.grad, alpha=-lr)
    return run


__all__ = [
    "ResidualBlock",
    "deep_mlp",
    "gradients_through_depth",
    "cosine",
    "ClippedRun",
    "train_clipped",
]
