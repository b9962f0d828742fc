r"""Adafactor's factored second moments, measured: the row-and-column estimate of a non-negative matrix,
the I-divergence it minimizes, the full running average it stands for, the weights that the schedule
:math:`\hat\beta_{2,t} = 1 - t^{\tau}` gives past gradients, optimizer state in bytes, and a linear layer whose
weight is stored flat (so that Adafactor keeps its second moments in full). Used by chapter 8.2
(``book/after_adam/adafactor.ipynb``).

For a non-negative n × m matrix V with row sums r = V1 and column sums c = 1ᵀV, the estimate
:math:`\hat V = r c / (1^\top r)` is the rank-1 matrix closest to V in I-divergence
:math:`I(V \,\|\, Q) = \sum_{ij} V_{ij} \log(V_{ij}/Q_{ij}) - V_{ij} + Q_{ij}` (Shazeer & Stern, 2018).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.core.data import Split
from companion.core.train import minibatch_steps


def row_column_estimate(v: Tensor) -> Tensor:
    r""":math:`\hat V = (V 1)(1^\top V) / (1^\top V 1)` over the last two dims of a non-negative ``v`` (per leading
    index): the outer product of the row and column sums divided by the total (0 where the total is 0)."""
    # r = V 1 (n × 1), c = 1ᵀ V (1 × m), S = 1ᵀ V 1
    r, c = v.sum(dim=-1, keepdim=True), v.sum(dim=-2, keepdim=True)
    total = r.sum(dim=-2, keepdim=True)
    # V̂ = r c / S
    return (r @ c) / torch.where(total > 0, total, torch.ones_like(total))


def i_divergence(p: Tensor, q: Tensor) -> float:
    r"""The I-divergence (generalized Kullback–Leibler) :math:`\sum p \log(p/q) - p + q` of non-negative tensors,
    with 0 log 0 = 0; infinite where q = 0 < p."""
    # p log(p/q) is 0 where p = 0, and +∞ where q = 0 < p
    log_term = torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p))
    return (log_term - p + q).sum().item()


def frobenius_rank1(v: Tensor) -> Tensor:
    r"""The rank-1 matrix closest to ``v`` in Frobenius norm: :math:`\sigma_1 u_1 v_1^\top` (Eckart–Young)."""
    u, s, vh = torch.linalg.svd(v)
    return s[0] * torch.outer(u[:, 0], vh[0])


def relative_error(approx: Tensor, exact: Tensor) -> float:
    r""":math:`\lVert \hat V - V\rVert_F / \lVert V\rVert_F`."""
    return ((approx - exact).norm() / exact.norm()).item()


def state_bytes(
    optimizer: torch.optim.Optimizer, keys: tuple[str, ...] | None = None
) -> int:
    """The bytes held by the tensors of ``optimizer``'s per-parameter state (only ``keys``, if given)."""
    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for key, value in state.items()
        if isinstance(value, Tensor) and (keys is None or key in keys)
    )


def average_weights(t: int, beta2_decay: float = -0.8) -> Tensor:
    r"""The weight :math:`w_s = (1 - \hat\beta_{2,s}) \prod_{k=s+1}^{t} \hat\beta_{2,k}` of the squared gradient of
    step s = 1 ... t in Adafactor's average at step t, with :math:`1 - \hat\beta_{2,k} = k^{\tau}` (float64)."""
    k = torch.arange(1, t + 1, dtype=torch.float64)
    new = k**beta2_decay  # 1 − β̂₂,k
    # Π_{k=s+1}^{t} β̂₂,k: a reversed cumulative product over k = 2 ... t, and the empty product 1 for s = t
    later = torch.flip(torch.cumprod(torch.flip(1 - new[1:], [0]), 0), [0])
    keep = torch.cat([later, torch.ones(1, dtype=torch.float64)])
    return new * keep


def adam_average_weights(t: int, beta2: float = 0.999) -> Tensor:
    r"""The weight :math:`(1 - \beta_2)\beta_2^{t-s} / (1 - \beta_2^t)` of the squared gradient of step s = 1 ... t
    in Adam's bias-corrected average :math:`\hat v_t` (float64)."""
    s = torch.arange(1, t + 1, dtype=torch.float64)
    return (1 - beta2) * beta2 ** (t - s) / (1 - beta2**t)


def effective_count(weights: Tensor) -> float:
    r"""How many gradients an average with weights w (summing to 1) holds: :math:`1 / \sum_s w_s^2`."""
    return (1 / weights.square().sum()).item()


class FlatLinear(nn.Module):
    """``nn.Linear`` with its weight stored as a vector of ``out · in`` entries and viewed as a matrix in the
    forward pass. The same function and initialization (it copies a fresh ``nn.Linear``, so the random
    stream is the same), but Adafactor sees a vector and keeps its second moments in full."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        linear = nn.Linear(in_features, out_features)
        self.shape = (out_features, in_features)
        self.weight = nn.Parameter(linear.weight.detach().reshape(-1).clone())
        self.bias = nn.Parameter(linear.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.view(self.shape), self.bias)


def track_second_moments(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Split,
    steps: int,
    batch_size: int = 64,
    beta2_decay: float = -0.8,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    r"""Train ``model`` with ``optimizer`` for ``steps`` mini-batch steps and keep, beside it, the full running
    average :math:`V_t = \hat\beta_{2,t} V_{t-1} + (1 - \hat\beta_{2,t})\, G_t^2` of every parameter with at least two
    dims (the second moments Adafactor factors); returns them by parameter name."""
    named = [(name, p) for name, p in model.named_parameters() if p.dim() >= 2]
    full = {name: torch.zeros_like(p) for name, p in named}
    watched = _Watched(optimizer, named, full, beta2_decay)
    while watched.t < steps:
        for _ in minibatch_steps(
            model, watched, train, batch_size, generator=generator
        ):
            if watched.t == steps:
                break
    return full


class _Watched:
    """An optimizer's stand-in that updates the full averages from the gradients before each step."""

    def __init__(self, optimizer, named, full, beta2_decay):
        self.optimizer, self.named, self.full, self.tau, self.t = (
            optimizer,
            named,
            full,
            beta2_decay,
            0,
        )

    def zero_grad(self):
        self.optimizer.zero_grad()

    def step(self):
        self.t += 1
        for name, p in self.named:
            # V_t = V_{t−1} + (1 − β̂₂,t)(G_t² − V_{t−1}),  1 − β̂₂,t = t^τ
            self.full[name].lerp_(p.grad.square(), math.pow(self.t, self.tau))
        self.optimizer.step()
