r"""Many one-hidden-layer networks trained at once, one per seed, as a single batched computation.

Used by chapter 3.1 (*From the perceptron to deep networks*): XOR solved by a hidden layer, and a
universal-approximation experiment (Cybenko, 1989; Hornik et al., 1989), in which the error on a 1-D
function falls as the hidden layer widens. Each seed s has its own network

.. math::
    f_s(x) = \sum_{j=1}^{m} v_{sj}\, \sigma(w_{sj}^\top x + c_{sj}) + d_s ,

initialized like ``torch.nn.Linear`` from its own generator and trained full-batch on the mean squared
error with Adam. The seeds share nothing: the loss is a sum of per-seed losses and Adam works
coordinate by coordinate, so each network follows exactly the path it would follow alone.
"""

from dataclasses import dataclass

import torch
from torch import Tensor
from companion.core.device import make_generator

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda z: z,
}


@dataclass
class ShallowNetworks:
    """S one-hidden-layer networks of width m on d inputs: ``W`` (S, m, d), ``c`` (S, m), ``v`` (S, m), ``d`` (S,)."""

    W: Tensor
    c: Tensor
    v: Tensor
    d: Tensor
    activation: str = "tanh"

    def __call__(self, X: Tensor) -> Tensor:
        r"""The S networks' outputs on ``X`` (n, d), shape (S, n): :math:`\sum_j v_{sj}\sigma(w_{sj}^\top x_i + c_{sj}) + d_s`."""
        # z_sij = w_sjᵀ x_i + c_sj
        z = torch.einsum("nk,smk->snm", X, self.W) + self.c[:, None, :]
        # f_s(x_i) = Σ_j v_sj σ(z_sij) + d_s
        return (
            torch.einsum("snm,sm->sn", ACTIVATIONS[self.activation](z), self.v)
            + self.d[:, None]
        )

    def parameters(self) -> list[Tensor]:
        return [self.W, self.c, self.v, self.d]


def init_shallow_networks(
    in_features: int,
    width: int,
    seeds: list[int],
    *,
    activation: str = "tanh",
    dtype: torch.dtype = torch.float64,
    device=None,
) -> ShallowNetworks:
    r"""One network per seed, each drawn like two ``nn.Linear`` layers: :math:`U(-1/\sqrt{\text{fan-in}}, 1/\sqrt{\text{fan-in}})`."""
    if width < 1 or in_features < 1 or not seeds:
        raise ValueError(
            f"need width >= 1, in_features >= 1 and seeds, got {width}, {in_features}, {seeds}"
        )
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )
    parts = []
    for seed in seeds:
        g = make_generator(seed)

        def uniform(*shape, fan_in):
            return (torch.rand(*shape, generator=g, dtype=dtype) * 2 - 1) / fan_in**0.5

        parts.append(
            (
                uniform(width, in_features, fan_in=in_features),
                uniform(width, fan_in=in_features),
                uniform(width, fan_in=width),
                uniform((), fan_in=width),
            )
        )
    W, c, v, d = (torch.stack(p).to(device).requires_grad_() for p in zip(*parts))
    return ShallowNetworks(W, c, v, d, activation)


def fit_shallow_networks(
    X: Tensor,
    y: Tensor,
    *,
    width: int,
    seeds: list[int],
    steps: int = 2000,
    lr: float = 0.01,
    activation: str = "tanh",
) -> tuple[ShallowNetworks, Tensor]:
    r"""Train one network per seed on (``X`` (n, d), ``y`` (n,)) by full-batch Adam on the MSE.

    .. math::
        \min_{\theta_s}\ \frac1n \sum_{i=1}^n \big(f_s(x_i) - y_i\big)^2 \quad\text{for every seed } s

    Returns the networks and each seed's final training MSE, shape (S,).
    """
    from companion.optim import Adam  # the course's own Adam (chapter 5.6)

    if X.dim() != 2 or y.shape != X.shape[:1]:
        raise ValueError(
            f"X must be (n, d) and y (n,), got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    nets = init_shallow_networks(
        X.shape[1], width, seeds, activation=activation, dtype=X.dtype, device=X.device
    )
    opt = Adam(nets.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        # Σ_s MSE_s: the seeds' gradients do not mix
        per_seed = ((nets(X) - y) ** 2).mean(dim=1)
        per_seed.sum().backward()
        opt.step()
    with torch.no_grad():
        per_seed = ((nets(X) - y) ** 2).mean(dim=1)
    return nets, per_seed


def fit_random_features(
    x: Tensor,
    y: Tensor,
    *,
    width: int,
    seeds: list[int],
    slope: float = 10.0,
    activation: str = "tanh",
) -> ShallowNetworks:
    r"""One-hidden-layer networks on a 1-D input whose hidden layer is random and output layer is optimal.

    .. math::
        w_j \sim \mathcal N(0, s^2), \quad u_j \sim U(-1, 1), \quad c_j = -w_j u_j, \qquad
        (v, d) = \arg\min_{v, d} \sum_i \Big(\sum_j v_j \sigma(w_j x_i + c_j) + d - y_i\Big)^2

    Unit j turns at :math:`x = u_j`, spread over [−1, 1], with slopes of size s (``slope``). The output
    layer is a linear least-squares problem, solved exactly, so the error measures what *some* network
    of this width can do, without the noise of training. ``x`` has shape (n, 1).
    """
    if x.dim() != 2 or x.shape[1] != 1 or y.shape != x.shape[:1]:
        raise ValueError(
            f"x must be (n, 1) and y (n,), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    nets = []
    for seed in seeds:
        g = make_generator(seed)
        # w_j ~ N(0, s²), c_j = −w_j u_j with u_j ~ U(−1, 1)
        w = torch.randn(width, generator=g, dtype=x.dtype).to(x.device) * slope
        c = -w * (torch.rand(width, generator=g, dtype=x.dtype).to(x.device) * 2 - 1)
        # the design matrix [σ(w_j x_i + c_j) | 1]
        H = torch.cat([ACTIVATIONS[activation](x * w + c), torch.ones_like(x)], dim=1)
        # (v, d) = argmin ‖H (v, d) − y‖²
        vd = torch.linalg.lstsq(H, y.unsqueeze(1)).solution.squeeze(1)
        nets.append((w.unsqueeze(1), c, vd[:-1], vd[-1]))
    W, c, v, d = (torch.stack(p) for p in zip(*nets))
    return ShallowNetworks(W, c, v, d, activation)
