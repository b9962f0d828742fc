r"""Rosenblatt's perceptron, its convergence on separable data, its failure on XOR, and linear stacks.

Used by chapter 3.1 (*From the perceptron to deep networks*). Labels are :math:`y \in \{-1, +1\}`.

The perceptron (Rosenblatt, 1958) predicts :math:`\operatorname{sign}(w^\top x + b)` and
learns by correcting its mistakes one example at a time. If some unit vector :math:`(w_*, b_*)`
separates the data with margin :math:`\gamma` and every augmented input :math:`(x, 1)` has norm at most
:math:`R`, it makes at most :math:`(R/\gamma)^2` mistakes in total (Novikoff, 1962), so it converges.
On XOR no line separates the classes and it never converges (Minsky & Papert, 1969).
"""

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


def xor_data(dtype: torch.dtype = torch.float64, device=None) -> tuple[Tensor, Tensor]:
    """The four XOR points: inputs in {0, 1}², label +1 where exactly one input is 1, else −1."""
    X = torch.tensor(
        [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=dtype, device=device
    )
    y = torch.tensor([-1.0, 1.0, 1.0, -1.0], dtype=dtype, device=device)
    return X, y


def separable_data(
    n: int,
    *,
    margin: float = 0.1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""``n`` points in [−1, 1]² labelled by a random line, keeping only those at least ``margin`` from it.

    Returns ``X`` (n, 2), ``y`` (n,) in {−1, +1}, and the separating line as a unit normal ``w_star``
    (2,) with offset ``b_star``: :math:`y_i (w_*^\top x_i + b_*) \ge \text{margin}` for every i.
    """
    if n < 1 or margin < 0:
        raise ValueError(f"need n >= 1 and margin >= 0, got n={n}, margin={margin}")
    angle = torch.rand((), generator=generator, dtype=dtype) * 2 * torch.pi
    w_star = torch.stack([angle.cos(), angle.sin()])
    b_star = (torch.rand((), generator=generator, dtype=dtype) - 0.5) * 0.5
    kept: list[Tensor] = []
    while sum(len(k) for k in kept) < n:
        x = torch.rand(4 * n, 2, generator=generator, dtype=dtype) * 2 - 1
        kept.append(x[(x @ w_star + b_star).abs() >= margin])
    X = torch.cat(kept)[:n]
    y = torch.where(X @ w_star + b_star > 0, 1.0, -1.0).to(dtype)
    return X, y, w_star, b_star


@dataclass
class PerceptronRun:
    """What :func:`perceptron_fit` returns: the final weights and the history of the run."""

    weight: Tensor
    bias: Tensor
    mistakes_per_epoch: list[int] = field(default_factory=list)
    accuracy_per_epoch: list[float] = field(default_factory=list)
    states: list[Tensor] = field(
        default_factory=list
    )  # (w, b) after each epoch, concatenated

    @property
    def updates(self) -> int:
        """The total number of mistakes, which is the number of updates."""
        return sum(self.mistakes_per_epoch)

    @property
    def converged(self) -> bool:
        """Whether some epoch made no mistake (the perceptron then never changes again)."""
        return 0 in self.mistakes_per_epoch


def perceptron_fit(
    X: Tensor, y: Tensor, *, epochs: int = 100, lr: float = 1.0
) -> PerceptronRun:
    r"""Rosenblatt's learning rule, one example at a time in a fixed order, from :math:`w = 0, b = 0`.

    .. math::
        \hat y_i &= \operatorname{sign}(w^\top x_i + b) \quad (\operatorname{sign} 0 = -1) \\
        \text{if } y_i (w^\top x_i + b) \le 0:\quad w &\leftarrow w + \eta\, y_i x_i, \qquad
        b \leftarrow b + \eta\, y_i

    with learning rate η (``lr``). Stops after the first epoch without a mistake. The accuracy of
    epoch e is that of the weights at its end, on all of ``X``.
    """
    if X.dim() != 2 or y.shape != X.shape[:1]:
        raise ValueError(
            f"X must be (n, d) and y (n,), got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("labels y must be -1 or +1")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    w = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
    b = torch.zeros((), dtype=X.dtype, device=X.device)
    run = PerceptronRun(w, b)
    for _ in range(epochs):
        mistakes = 0
        for x_i, y_i in zip(X, y):
            # a mistake (or a point on the boundary): y_i (wᵀx_i + b) ≤ 0
            if y_i * (w @ x_i + b) <= 0:
                # w ← w + η y_i x_i
                w = w + lr * y_i * x_i
                # b ← b + η y_i
                b = b + lr * y_i
                mistakes += 1
        run.mistakes_per_epoch.append(mistakes)
        run.accuracy_per_epoch.append(
            float((perceptron_predict(w, b, X) == y).double().mean())
        )
        run.states.append(torch.cat([w, b.reshape(1)]))
        if mistakes == 0:
            break
    run.weight, run.bias = w, b
    return run


def perceptron_predict(weight: Tensor, bias: Tensor, X: Tensor) -> Tensor:
    r""":math:`\operatorname{sign}(w^\top x + b)` for each row of ``X``, with sign 0 = −1 (labels ±1)."""
    return torch.where(X @ weight + bias > 0, 1.0, -1.0).to(X.dtype)


def novikoff_bound(X: Tensor, y: Tensor, weight: Tensor, bias: Tensor) -> float:
    r"""Novikoff's bound :math:`(R/\gamma)^2` on the perceptron's total number of mistakes.

    .. math::
        u = \frac{(w, b)}{\lVert (w, b) \rVert}, \qquad
        \gamma = \min_i y_i\, u^\top (x_i, 1), \qquad R = \max_i \lVert (x_i, 1) \rVert

    for a separator ``(weight, bias)``; the bias is learned as the weight of a constant input 1, hence
    the augmented vectors. Raises if the separator does not separate the data (γ ≤ 0).
    """
    # (x_i, 1): the bias as the weight of a constant input
    X_aug = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)
    # u = (w, b) / ‖(w, b)‖
    u = torch.cat([weight, bias.reshape(1)])
    u = u / u.norm()
    # γ = min_i y_i uᵀ(x_i, 1)
    gamma = (y * (X_aug @ u)).min()
    if gamma <= 0:
        raise ValueError("(weight, bias) does not separate the data")
    # R = max_i ‖(x_i, 1)‖
    R = X_aug.norm(dim=1).max()
    return float((R / gamma) ** 2)


def first_repeated_state(states: list[Tensor]) -> tuple[int, int] | None:
    """The first pair of epochs (i, j), i < j, after which the perceptron had the very same weights.

    On non-separable data with integer inputs and η = 1 the weights stay on a bounded integer lattice,
    so they must come back to an earlier value: from then on the run repeats itself forever."""
    for j in range(len(states)):
        for i in range(j):
            if torch.equal(states[i], states[j]):
                return i, j
    return None


def threshold_xor(X: Tensor) -> Tensor:
    r"""XOR by one hidden layer of two threshold units (hand-chosen weights), as labels ±1.

    .. math::
        h_1 = [x_1 + x_2 - \tfrac12 > 0] \ \text{(OR)}, \qquad
        h_2 = [x_1 + x_2 - \tfrac32 > 0] \ \text{(AND)}, \qquad
        \hat y = \operatorname{sign}(h_1 - h_2 - \tfrac12)
    """
    s = X[:, 0] + X[:, 1]
    # h₁ = OR(x₁, x₂), h₂ = AND(x₁, x₂): two lines
    h1, h2 = (s - 0.5 > 0).to(X.dtype), (s - 1.5 > 0).to(X.dtype)
    # ŷ = sign(h₁ − h₂ − ½): "OR but not AND", linear in the hidden units
    return torch.where(h1 - h2 - 0.5 > 0, 1.0, -1.0).to(X.dtype)


def linear_stack_as_matrix(layers: list[nn.Linear]) -> tuple[Tensor, Tensor]:
    r"""The single affine map that a stack of linear layers (no activation between them) computes.

    .. math::
        W = W_L \cdots W_2 W_1, \qquad
        b = b_L + W_L (b_{L-1} + W_{L-1}(\cdots (b_2 + W_2 b_1)))

    so that :math:`f(x) = W x + b`, whatever the depth L. Layers without bias count as b = 0.
    """
    if not layers:
        raise ValueError("need at least one layer")
    first = layers[0].weight
    W = torch.eye(first.shape[1], dtype=first.dtype, device=first.device)
    b = torch.zeros(first.shape[1], dtype=first.dtype, device=first.device)
    with torch.no_grad():
        for layer in layers:
            # W ← W_l W
            W = layer.weight @ W
            # b ← W_l b + b_l
            b = layer.weight @ b + (layer.bias if layer.bias is not None else 0)
    return W, b


def least_squares_linear(X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    r"""The best affine fit :math:`\min_{w,b} \sum_i (w^\top x_i + b - y_i)^2`, as (w, b).

    On the four XOR points it is w = 0, b = 0: every linear network, however deep, can at best
    predict the same value for all four points."""
    X_aug = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)
    # (X̃ᵀX̃) θ = X̃ᵀ y, solved stably
    theta = torch.linalg.lstsq(X_aug, y.unsqueeze(1)).solution.squeeze(1)
    return theta[:-1], theta[-1]
